-- Set while a send of the row is under way, and left set if the process dies meanwhile: the
-- channel may have received it, so a later "nothing to say" decision must not withdraw it
-- (the channel would be left believing something the notification log never recorded).
ALTER TABLE outbox ADD COLUMN sending_since REAL;
