-- When each system with an endpoint is next due a probe, kept as systems change and as
-- probes land, so that a probe round reads only what is due from an index: at ten times
-- the nation (450,000 systems) working it out from system_health scanned every system
-- each round (docs/deployment.md). `loopback` says the endpoint names a loopback address
-- literally: without `probe_whole_inventory` only those are ever taken.
CREATE TABLE probe_schedule (
    system_id INTEGER PRIMARY KEY REFERENCES systems (id) ON DELETE CASCADE,
    grade     INTEGER NOT NULL,
    loopback  INTEGER NOT NULL,      -- 0 or 1
    due_at    INTEGER NOT NULL,      -- ms since the epoch; 0: never probed
    endpoint  TEXT NOT NULL          -- the system's endpoint_url
) STRICT;
-- A round reads these alone, in order: the endpoint is in the index so as not to
-- fetch rows scattered over the table (their cost grew with the inventory).
CREATE INDEX probe_schedule_due ON probe_schedule (grade, due_at, system_id, endpoint);
CREATE INDEX probe_schedule_loopback_due ON probe_schedule (loopback, grade, due_at, system_id, endpoint);

INSERT INTO probe_schedule (system_id, grade, loopback, due_at, endpoint)
SELECT s.id, s.grade,
       s.endpoint_url LIKE 'http://127.%' OR s.endpoint_url LIKE 'https://127.%'
         OR s.endpoint_url LIKE 'http://[::1]%' OR s.endpoint_url LIKE 'https://[::1]%'
         OR s.endpoint_url LIKE 'tcp://127.%' OR s.endpoint_url LIKE 'tcp://[::1]%',
       -- Due again as of the last probe: probed once more at the first round, then on time.
       COALESCE(h.checked_at, 0), s.endpoint_url
FROM systems s LEFT JOIN system_health h ON h.system_id = s.id
WHERE s.endpoint_url IS NOT NULL;

CREATE TRIGGER probe_schedule_on_insert AFTER INSERT ON systems
WHEN NEW.endpoint_url IS NOT NULL
BEGIN
    INSERT INTO probe_schedule (system_id, grade, loopback, due_at, endpoint)
    VALUES (NEW.id, NEW.grade,
            NEW.endpoint_url LIKE 'http://127.%' OR NEW.endpoint_url LIKE 'https://127.%'
              OR NEW.endpoint_url LIKE 'http://[::1]%' OR NEW.endpoint_url LIKE 'https://[::1]%'
              OR NEW.endpoint_url LIKE 'tcp://127.%' OR NEW.endpoint_url LIKE 'tcp://[::1]%',
            0, NEW.endpoint_url);
END;

-- A new address is due at once (what was probed elsewhere says nothing of it); a new
-- grade keeps the time due; no address, nothing to probe.
CREATE TRIGGER probe_schedule_on_update AFTER UPDATE OF endpoint_url, grade ON systems
BEGIN
    DELETE FROM probe_schedule WHERE system_id = NEW.id AND NEW.endpoint_url IS NULL;
    INSERT INTO probe_schedule (system_id, grade, loopback, due_at, endpoint)
    SELECT NEW.id, NEW.grade,
           NEW.endpoint_url LIKE 'http://127.%' OR NEW.endpoint_url LIKE 'https://127.%'
             OR NEW.endpoint_url LIKE 'http://[::1]%' OR NEW.endpoint_url LIKE 'https://[::1]%'
             OR NEW.endpoint_url LIKE 'tcp://127.%' OR NEW.endpoint_url LIKE 'tcp://[::1]%',
           0, NEW.endpoint_url
    WHERE NEW.endpoint_url IS NOT NULL
    ON CONFLICT (system_id) DO UPDATE SET
        grade = excluded.grade,
        loopback = excluded.loopback,
        endpoint = excluded.endpoint,
        due_at = CASE WHEN NEW.endpoint_url IS OLD.endpoint_url THEN probe_schedule.due_at ELSE 0 END;
END;
