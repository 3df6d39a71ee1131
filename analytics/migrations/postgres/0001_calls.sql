-- Calls and everything they leave behind. No foreign keys on call_sid: rows arrive through the
-- write-behind buffer in batches, and a call's events may be stored before its calls row.

CREATE TABLE calls (
    call_sid     text PRIMARY KEY,
    tenant       text NOT NULL,
    direction    text NOT NULL,
    from_number  text NOT NULL,
    to_number    text NOT NULL,
    state        text NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    bots         text[] NOT NULL DEFAULT '{}',
    outcome      text,
    duration_s   double precision
);
CREATE INDEX calls_tenant_started ON calls (tenant, started_at DESC, call_sid);
CREATE INDEX calls_started ON calls (started_at DESC, call_sid);

CREATE TABLE call_events (
    call_sid  text NOT NULL,
    seq       integer NOT NULL,
    tenant    text NOT NULL,
    kind      text NOT NULL,
    at        double precision NOT NULL,
    payload   jsonb NOT NULL,
    PRIMARY KEY (call_sid, seq)
);
CREATE INDEX call_events_kind ON call_events (kind, call_sid);

CREATE TABLE utterances (
    call_sid   text NOT NULL,
    seq        integer NOT NULL,
    tenant     text NOT NULL,
    speaker    text NOT NULL CHECK (speaker IN ('caller', 'bot')),
    text       text NOT NULL,
    start_s    double precision NOT NULL,
    end_s      double precision NOT NULL,
    language   text,
    sentiment  double precision,
    PRIMARY KEY (call_sid, seq)
);

CREATE TABLE bot_sessions (
    tenant      text NOT NULL,
    phone       text NOT NULL,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, phone)
);

CREATE TABLE appointments (
    appointment_id  text PRIMARY KEY,
    call_sid        text NOT NULL,
    tenant          text NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    title           text NOT NULL,
    booked_at       timestamptz NOT NULL,
    details         jsonb NOT NULL
);
CREATE INDEX appointments_call ON appointments (call_sid);
CREATE INDEX appointments_tenant_booked ON appointments (tenant, booked_at);

CREATE TABLE recordings (
    call_sid    text PRIMARY KEY,
    tenant      text NOT NULL,
    path        text NOT NULL,
    duration_s  double precision NOT NULL,
    channels    integer NOT NULL,
    size_bytes  bigint NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX recordings_created ON recordings (created_at);

CREATE TABLE usage (
    call_sid          text PRIMARY KEY,
    tenant            text NOT NULL,
    billable_seconds  integer NOT NULL,
    billable_minutes  integer NOT NULL,
    recorded_at       timestamptz NOT NULL
);
CREATE INDEX usage_tenant_recorded ON usage (tenant, recorded_at);
