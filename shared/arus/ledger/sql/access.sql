-- Who is calling: every engine call carries the API key's id and the sha256 of its secret and
-- is authorised in the same round trip as its work, so a revoked key fails on the very next
-- request. The secret is 256 random bits: comparing its hash leaks nothing usable by timing.

-- The engine's judgements assume READ COMMITTED: each statement sees what committed before it
-- (a close, a sweep, a claim). A caller that opened its transaction at REPEATABLE READ or
-- SERIALIZABLE would have them judged on a snapshot from before; every writing entry point
-- refuses to run there.
CREATE OR REPLACE FUNCTION arus_require_read_committed() RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'the ledger writes at READ COMMITTED, not %',
                        current_setting('transaction_isolation')
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION arus_authorize(p_key_id text, p_secret_hash bytea, p_scope text)
RETURNS uuid LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_key record;
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('read', 'write') THEN
        RAISE EXCEPTION 'the scope is read or write' USING ERRCODE = 'P0001', HINT = 'forbidden';
    END IF;
    SELECT ledger_id, scope, secret_hash INTO v_key
    FROM api_keys WHERE id = p_key_id AND revoked_at IS NULL;
    -- IS DISTINCT FROM: a NULL hash must not compare as "not different".
    IF NOT FOUND OR v_key.secret_hash IS DISTINCT FROM p_secret_hash THEN
        RAISE EXCEPTION 'unknown or revoked API key'
            USING ERRCODE = 'P0001', HINT = 'unauthenticated';
    END IF;
    IF p_scope = 'write' THEN
        IF v_key.scope <> 'write' THEN
            RAISE EXCEPTION 'this API key is read-only; mutations need a write key'
                USING ERRCODE = 'P0001', HINT = 'forbidden';
        END IF;
        PERFORM arus_require_read_committed();
    END IF;
    RETURN v_key.ledger_id;
END $$;
