-- Who is calling: every engine call carries the API key's id and the sha256 of its secret and
-- is authorised in the same round trip as its work, so a revoked key fails on the very next
-- request. The secret is 256 random bits: comparing its hash leaks nothing usable by timing.

CREATE OR REPLACE FUNCTION arus_authorize(p_key_id text, p_secret_hash bytea, p_scope text)
RETURNS uuid LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_key record;
BEGIN
    SELECT ledger_id, scope, secret_hash INTO v_key
    FROM api_keys WHERE id = p_key_id AND revoked_at IS NULL;
    IF NOT FOUND OR v_key.secret_hash <> p_secret_hash THEN
        RAISE EXCEPTION 'unknown or revoked API key'
            USING ERRCODE = 'P0001', HINT = 'unauthenticated';
    END IF;
    IF p_scope = 'write' AND v_key.scope <> 'write' THEN
        RAISE EXCEPTION 'this API key is read-only; mutations need a write key'
            USING ERRCODE = 'P0001', HINT = 'forbidden';
    END IF;
    RETURN v_key.ledger_id;
END $$;
