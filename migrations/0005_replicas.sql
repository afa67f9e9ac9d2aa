-- Failover (issue #13): every serve process registers here and, on a
-- connection of its own, holds a session advisory lock on (16720, lock_key)
-- for as long as it lives. PostgreSQL drops the lock the moment that
-- connection dies (a SIGKILL closes the socket), so a survivor knows at once
-- that a replica is gone and takes over the River jobs it was running,
-- instead of waiting for River's stuck-job rescue. seen_at is the heartbeat:
-- it catches a replica whose host vanished without closing its socket.
CREATE TABLE replicas (
    client_id  text PRIMARY KEY,
    lock_key   integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
