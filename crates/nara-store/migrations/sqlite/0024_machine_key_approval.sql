-- At the national alert level "caution" and above, a newly registered machine key
-- waits for a security analyst other than its registrar to approve it
-- (docs/security-operations.md); until then it signs nothing.
ALTER TABLE machine_clients ADD COLUMN pending_since INTEGER;
ALTER TABLE machine_clients ADD COLUMN approved_by TEXT;
