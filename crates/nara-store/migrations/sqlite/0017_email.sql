-- Email notifications: an address the account holder gives (optional), and
-- when each notification was emailed (set at once for accounts without an
-- address, so the mailer only ever reads the rows it has to send).
ALTER TABLE accounts ADD COLUMN email TEXT;
ALTER TABLE notifications ADD COLUMN emailed_at INTEGER;
CREATE INDEX notifications_unsent ON notifications (emailed_at, id);
