"""Protocol-faithful local emulators of the vendors Leadline talks to (Deepgram, Anthropic,
ElevenLabs, Twilio), with configurable latency and fault injection, for tests, the demo and the
benchmarks: no vendor is reachable from our machines."""
