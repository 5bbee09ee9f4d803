-- Fencing: once any replica has held the lease, a write to the leader's tables (outbox claims
-- and decisions, the notification log, alert state) is refused unless its transaction carries
-- the lease's current epoch (set_config('sentinel.epoch', ..., true)) and the lease has not
-- expired by the database clock. FOR SHARE serialises it against a takeover: either the write
-- commits before the new epoch does, or it sees the new epoch and is refused. Statement-level,
-- so a batch pays once.
CREATE FUNCTION sentinel_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lease ha_lease%ROWTYPE;
    mine  TEXT := current_setting('sentinel.epoch', true);
BEGIN
    SELECT * INTO lease FROM ha_lease WHERE id = 1 FOR SHARE;
    IF NOT FOUND THEN
        RETURN NULL;  -- no replica ever led: a single sentinel on PostgreSQL, nothing to fence
    END IF;
    IF mine IS NULL OR mine = '' OR mine::bigint <> lease.epoch
       OR lease.expires_at <= extract(epoch FROM clock_timestamp()) THEN
        RAISE EXCEPTION 'write to % fenced: epoch % is not the lease''s (epoch %, held by %, %)',
            TG_TABLE_NAME, COALESCE(NULLIF(mine, ''), 'none'), lease.epoch, lease.holder,
            CASE WHEN lease.expires_at <= extract(epoch FROM clock_timestamp())
                 THEN 'expired' ELSE 'valid' END
            USING ERRCODE = 'SF001';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_fence BEFORE INSERT OR UPDATE OR DELETE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION sentinel_fence();
CREATE TRIGGER nflog_fence BEFORE INSERT OR UPDATE OR DELETE ON nflog
    FOR EACH STATEMENT EXECUTE FUNCTION sentinel_fence();
CREATE TRIGGER alerts_fence BEFORE INSERT OR UPDATE OR DELETE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION sentinel_fence();
