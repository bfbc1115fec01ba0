-- The screening of phishing reports reads those submitted since its last round, in order of
-- submission, from this index: not every report ever screened, each round (their number grows
-- with the years; docs/algorithms.md).
CREATE INDEX applications_by_service_submitted ON applications (service_code, submitted_at);
