-- The Postgres schema in SQLite's dialect. Datetimes are integer microseconds since the Unix
-- epoch (UTC), so ordering and range filters are exact; JSON columns hold JSON text.

CREATE TABLE calls (
    call_sid     TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    direction    TEXT NOT NULL,
    from_number  TEXT NOT NULL,
    to_number    TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    bots         TEXT NOT NULL DEFAULT '[]',
    outcome      TEXT,
    duration_s   REAL
);
CREATE INDEX calls_tenant_started ON calls (tenant, started_at DESC, call_sid);
CREATE INDEX calls_started ON calls (started_at DESC, call_sid);

CREATE TABLE call_events (
    call_sid  TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    tenant    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    at        REAL NOT NULL,
    payload   TEXT NOT NULL,
    PRIMARY KEY (call_sid, seq)
);
CREATE INDEX call_events_kind ON call_events (kind, call_sid);

CREATE TABLE utterances (
    call_sid   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    speaker    TEXT NOT NULL CHECK (speaker IN ('caller', 'bot')),
    text       TEXT NOT NULL,
    start_s    REAL NOT NULL,
    end_s      REAL NOT NULL,
    language   TEXT,
    sentiment  REAL,
    PRIMARY KEY (call_sid, seq)
);

CREATE TABLE bot_sessions (
    tenant      TEXT NOT NULL,
    phone       TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, phone)
);

CREATE TABLE appointments (
    appointment_id  TEXT PRIMARY KEY,
    call_sid        TEXT NOT NULL,
    tenant          TEXT NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    title           TEXT NOT NULL,
    booked_at       INTEGER NOT NULL,
    details         TEXT NOT NULL
);
CREATE INDEX appointments_call ON appointments (call_sid);
CREATE INDEX appointments_tenant_booked ON appointments (tenant, booked_at);

CREATE TABLE recordings (
    call_sid    TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    path        TEXT NOT NULL,
    duration_s  REAL NOT NULL,
    channels    INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX recordings_created ON recordings (created_at);

CREATE TABLE usage (
    call_sid          TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    billable_seconds  INTEGER NOT NULL,
    billable_minutes  INTEGER NOT NULL,
    recorded_at       INTEGER NOT NULL
);
CREATE INDEX usage_tenant_recorded ON usage (tenant, recorded_at);
