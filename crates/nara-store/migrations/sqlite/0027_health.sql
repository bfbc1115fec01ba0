-- Health of the inventory (docs/security-operations.md): which systems a service depends
-- on, each probed system's state now, and a week of probe results for uptime and charts.
CREATE TABLE service_dependencies (
    service_id INTEGER NOT NULL REFERENCES services (id),
    system_id  INTEGER NOT NULL REFERENCES systems (id),
    PRIMARY KEY (service_id, system_id)
) STRICT;
CREATE INDEX service_dependencies_by_system ON service_dependencies (system_id);

CREATE TABLE system_health (
    system_id   INTEGER PRIMARY KEY REFERENCES systems (id),
    state       TEXT NOT NULL,       -- up, degraded, down
    since       INTEGER NOT NULL,       -- when it entered this state
    checked_at  INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    status_code INTEGER,                -- none: no answer
    detail      TEXT NOT NULL
) STRICT;

CREATE TABLE probe_results (
    id         INTEGER PRIMARY KEY,
    system_id  INTEGER NOT NULL REFERENCES systems (id),
    at         INTEGER NOT NULL,
    state      TEXT NOT NULL,
    latency_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX probe_results_by_system ON probe_results (system_id, at);
CREATE INDEX probe_results_by_time ON probe_results (at);
