-- Lists filtered by agency: a covering index answers counts and searches
-- within one agency without visiting the table (an agency's rows are spread
-- over the whole table, so visiting them costs a page read each).
CREATE INDEX systems_search_by_agency ON systems (agency_id, search_text);
CREATE INDEX services_by_agency ON services (agency_id, id);
