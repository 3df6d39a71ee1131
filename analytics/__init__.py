"""Call analytics and the store calls are kept in."""
