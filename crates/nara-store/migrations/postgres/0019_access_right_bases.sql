-- An access right names what its client may invoke: the purposes it may
-- state and the legal bases it may name instead of the citizen's consent
-- (in Korea's administrative information sharing each using institution is
-- approved for particular information under particular laws). Rights granted
-- before keep the service's purposes and may name no legal basis: they need
-- the citizen's consent until an agency admin grants them anew with bases.
ALTER TABLE access_rights ADD COLUMN purposes TEXT NOT NULL DEFAULT '';
ALTER TABLE access_rights ADD COLUMN legal_bases TEXT NOT NULL DEFAULT '';
UPDATE access_rights SET purposes = (
    SELECT purposes FROM data_services WHERE data_services.id = access_rights.service_id
);
