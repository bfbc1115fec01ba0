-- When each system with an endpoint is next due a probe, kept as systems change and as
-- probes land, so that a probe round reads only what is due from an index: at ten times
-- the nation (450,000 systems) working it out from system_health scanned every system
-- each round (docs/deployment.md). `loopback` says the endpoint names a loopback address
-- literally: without `probe_whole_inventory` only those are ever taken.
CREATE TABLE probe_schedule (
    system_id BIGINT PRIMARY KEY REFERENCES systems (id) ON DELETE CASCADE,
    grade     BIGINT NOT NULL,
    loopback  BOOLEAN NOT NULL,
    due_at    BIGINT NOT NULL,       -- ms since the epoch; 0: never probed
    endpoint  TEXT NOT NULL          -- the system's endpoint_url
);
-- A round reads these alone, in order (index-only): the endpoint is in the index so as
-- not to fetch rows scattered over the table (their cost grew with the inventory).
CREATE INDEX probe_schedule_due ON probe_schedule (grade, due_at, system_id) INCLUDE (endpoint);
CREATE INDEX probe_schedule_loopback_due ON probe_schedule (loopback, grade, due_at, system_id) INCLUDE (endpoint);

CREATE FUNCTION probe_schedule_loopback(endpoint TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT endpoint LIKE 'http://127.%' OR endpoint LIKE 'https://127.%'
        OR endpoint LIKE 'http://[::1]%' OR endpoint LIKE 'https://[::1]%'
        OR endpoint LIKE 'tcp://127.%' OR endpoint LIKE 'tcp://[::1]%'
$$;

INSERT INTO probe_schedule (system_id, grade, loopback, due_at, endpoint)
SELECT s.id, s.grade, probe_schedule_loopback(s.endpoint_url),
       -- Due again as of the last probe: probed once more at the first round, then on time.
       COALESCE(h.checked_at, 0), s.endpoint_url
FROM systems s LEFT JOIN system_health h ON h.system_id = s.id
WHERE s.endpoint_url IS NOT NULL;

-- A new system with an address is due at once; a new address too (what was probed
-- elsewhere says nothing of it); a new grade keeps the time due; no address, nothing to
-- probe.
CREATE FUNCTION probe_schedule_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    same_address BOOLEAN := FALSE;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        same_address := NEW.endpoint_url IS NOT DISTINCT FROM OLD.endpoint_url;
    END IF;
    IF NEW.endpoint_url IS NULL THEN
        DELETE FROM probe_schedule WHERE system_id = NEW.id;
    ELSE
        INSERT INTO probe_schedule (system_id, grade, loopback, due_at, endpoint)
        VALUES (NEW.id, NEW.grade, probe_schedule_loopback(NEW.endpoint_url), 0, NEW.endpoint_url)
        ON CONFLICT (system_id) DO UPDATE SET
            grade = excluded.grade,
            loopback = excluded.loopback,
            endpoint = excluded.endpoint,
            due_at = CASE WHEN same_address THEN probe_schedule.due_at ELSE 0 END;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER probe_schedule_follow AFTER INSERT OR UPDATE OF endpoint_url, grade ON systems
FOR EACH ROW EXECUTE FUNCTION probe_schedule_follow();
