-- The database renders the canonical JSON of accounts and entries, once per object, as `json`
-- in the field order the API documents (`id` first; jsonb would reorder keys by length), so the
-- stored idempotent response, the outbox event and the read API never disagree on a shape.

CREATE OR REPLACE FUNCTION arus_timestamp(p_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION arus_account_json(p_account_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', a.id, 'code', a.code, 'name', a.name, 'type', a.type,
        'currency', a.currency, 'allow_negative', a.allow_negative, 'metadata', a.metadata,
        'balance', b.balance, 'created_at', arus_timestamp(a.created_at))
    FROM accounts a JOIN balances b ON b.account_id = a.id
    WHERE a.id = p_account_id
$$;

CREATE OR REPLACE FUNCTION arus_entry_json(p_entry_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', e.id, 'ledger_seq', e.ledger_seq, 'description', e.description,
        'effective_date', to_char(e.effective_date, 'YYYY-MM-DD'), 'metadata', e.metadata,
        'postings', (
            SELECT json_agg(json_build_object(
                       'account_id', p.account_id, 'account_code', a.code,
                       'direction', p.direction, 'amount', p.amount, 'currency', p.currency)
                   ORDER BY p.position)
            FROM postings p JOIN accounts a ON a.id = p.account_id
            WHERE p.entry_id = e.id),
        'reverses', e.reverses,
        'reversed_by', (SELECT r.id FROM entries r WHERE r.reverses = e.id),
        'created_at', arus_timestamp(e.created_at))
    FROM entries e
    WHERE e.id = p_entry_id
$$;
