-- Lists filtered by agency are ordered by id: one index serves both, so the
-- planner need not walk every row in id order to find one agency's.
CREATE INDEX systems_by_agency ON systems (agency_id, id);
CREATE INDEX services_by_agency ON services (agency_id, id);
