//! The schema of the PostgreSQL store, and how a database is brought up to date.

use tokio_postgres::Client;

/// The schema, one step per version. A database is brought up to the last version when a
/// persister connects: under an advisory lock, in one transaction, so that hosts starting
/// together on a fresh database do not race (PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not
/// safe against a concurrent one), and each step runs once. Never change a step: add one.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS damson_checkpoints (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        tag TEXT NOT NULL DEFAULT '',
        bundle BYTEA NOT NULL,
        saved_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, pid, tag)
    );
    CREATE TABLE IF NOT EXISTS damson_plugins (
        digest TEXT PRIMARY KEY,
        component BYTEA NOT NULL
    );
    CREATE TABLE IF NOT EXISTS damson_claims (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        owner TEXT NOT NULL,
        until_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, pid)
    );",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS damson_tenants (
        name TEXT PRIMARY KEY,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS damson_tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        scopes TEXT[] NOT NULL,
        label TEXT,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT,
        revoked_ms BIGINT
    );
    CREATE INDEX IF NOT EXISTS damson_tokens_tenant ON damson_tokens (tenant);
    CREATE TABLE IF NOT EXISTS damson_audit (
        seq BIGSERIAL PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS damson_audit_tenant_seq ON damson_audit (tenant, seq);",
    ),
    (
        3,
        "ALTER TABLE damson_tenants ADD COLUMN IF NOT EXISTS quotas TEXT NOT NULL DEFAULT '{}';",
    ),

    (
        4,
        // Row-level security: a connection acting as a tenant's role (see `tenants.rs`) sees
        // and changes only that tenant's rows, whatever its query says. The tables' owner (who
        // migrates, and serves every tenant) is not bound by it.
        "CREATE TABLE IF NOT EXISTS damson_tenant_roles (
        tenant TEXT PRIMARY KEY,
        role TEXT NOT NULL UNIQUE
    );
    CREATE OR REPLACE FUNCTION damson_tenant_of(who TEXT) RETURNS TEXT
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
        AS $$ SELECT tenant FROM damson_tenant_roles WHERE role = who $$;
    CREATE OR REPLACE FUNCTION damson_role_name(t TEXT) RETURNS TEXT LANGUAGE sql STABLE
        AS $$ SELECT 'damson_' || left(encode(sha256(convert_to(current_database() || '/' || t, 'UTF8')), 'hex'), 24) $$;
    ALTER TABLE damson_checkpoints ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_checkpoints
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    ALTER TABLE damson_claims ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_claims
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    ALTER TABLE damson_audit ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_audit
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    ALTER TABLE damson_tokens ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_tokens
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    ALTER TABLE damson_tenants ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_tenants
        USING (name = damson_tenant_of(current_user))
        WITH CHECK (name = damson_tenant_of(current_user));
    CREATE OR REPLACE FUNCTION damson_add_tenant_role(t TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
    DECLARE r TEXT := damson_role_name(t);
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON damson_checkpoints, damson_claims TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT ON damson_plugins, damson_audit TO %I', r);
        EXECUTE format('GRANT SELECT ON damson_tenants, damson_schema TO %I', r);
        EXECUTE format('GRANT USAGE ON SEQUENCE damson_audit_seq_seq TO %I', r);
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
        INSERT INTO damson_tenant_roles (tenant, role) VALUES (t, r)
            ON CONFLICT (tenant) DO UPDATE SET role = EXCLUDED.role;
        RETURN r;
    END $$;
    CREATE OR REPLACE FUNCTION damson_drop_tenant_role(t TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
    DECLARE r TEXT;
    BEGIN
        DELETE FROM damson_tenant_roles WHERE tenant = t RETURNING role INTO r;
        IF r IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON damson_checkpoints, damson_claims, damson_plugins, '
                'damson_audit, damson_tenants, damson_schema FROM %I', r);
            EXECUTE format('REVOKE ALL ON SEQUENCE damson_audit_seq_seq FROM %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END $$;
    SELECT damson_add_tenant_role(name) FROM damson_tenants;",
    ),
    (
        5,
        // Process logs: each process's last lines, numbered, and the count of those dropped;
        // kept to their tenant by row-level security as in step 4. The tenant roles' functions
        // are made again to grant (and revoke) the new tables, and the roles that exist get
        // them now.
        "CREATE TABLE IF NOT EXISTS damson_logs (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        level TEXT NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (tenant, pid, seq)
    );
    CREATE TABLE IF NOT EXISTS damson_log_heads (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        dropped BIGINT NOT NULL,
        PRIMARY KEY (tenant, pid)
    );
    ALTER TABLE damson_logs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_logs
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    ALTER TABLE damson_log_heads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_log_heads
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    CREATE OR REPLACE FUNCTION damson_add_tenant_role(t TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
    DECLARE r TEXT := damson_role_name(t);
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON damson_checkpoints, damson_claims, '
            'damson_logs, damson_log_heads TO %I', r);
        EXECUTE format('GRANT SELECT, INSERT ON damson_plugins, damson_audit TO %I', r);
        EXECUTE format('GRANT SELECT ON damson_tenants, damson_schema TO %I', r);
        EXECUTE format('GRANT USAGE ON SEQUENCE damson_audit_seq_seq TO %I', r);
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
        INSERT INTO damson_tenant_roles (tenant, role) VALUES (t, r)
            ON CONFLICT (tenant) DO UPDATE SET role = EXCLUDED.role;
        RETURN r;
    END $$;
    CREATE OR REPLACE FUNCTION damson_drop_tenant_role(t TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
    DECLARE r TEXT;
    BEGIN
        DELETE FROM damson_tenant_roles WHERE tenant = t RETURNING role INTO r;
        IF r IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON damson_checkpoints, damson_claims, damson_plugins, '
                'damson_audit, damson_tenants, damson_schema, damson_logs, damson_log_heads '
                'FROM %I', r);
            EXECUTE format('REVOKE ALL ON SEQUENCE damson_audit_seq_seq FROM %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END $$;
    SELECT damson_add_tenant_role(tenant) FROM damson_tenant_roles;",
    ),
    (
        6,
        // The summary index: a few fields of each process's current checkpoint, written in
        // the statement that writes it (`state` NULL: not indexed yet — every checkpoint
        // stored before this step, which the host indexes on first reading it). Kept to
        // its tenant as in step 4. From here the tables a tenant role is granted are rows
        // of `damson_tenant_tables`, so that a later step adds a row instead of making the
        // role functions again.
        "CREATE TABLE IF NOT EXISTS damson_summaries (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        state TEXT,
        live BOOLEAN NOT NULL DEFAULT false,
        paused BOOLEAN NOT NULL DEFAULT false,
        failed BOOLEAN NOT NULL DEFAULT false,
        plugin TEXT NOT NULL DEFAULT '',
        status TEXT,
        position TEXT NOT NULL DEFAULT '',
        parent TEXT,
        ctime BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, pid)
    );
    CREATE INDEX IF NOT EXISTS damson_summaries_live ON damson_summaries (tenant, ctime) WHERE live;
    CREATE INDEX IF NOT EXISTS damson_summaries_unindexed ON damson_summaries (tenant) WHERE state IS NULL;
    CREATE INDEX IF NOT EXISTS damson_summaries_state ON damson_summaries (tenant, state, ctime);
    INSERT INTO damson_summaries (tenant, pid)
        SELECT tenant, pid FROM damson_checkpoints WHERE tag = '' ON CONFLICT DO NOTHING;
    ALTER TABLE damson_summaries ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_summaries
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    CREATE TABLE IF NOT EXISTS damson_tenant_tables (
        name TEXT PRIMARY KEY,
        privileges TEXT NOT NULL
    );
    INSERT INTO damson_tenant_tables (name, privileges) VALUES
        ('damson_checkpoints', 'SELECT, INSERT, UPDATE, DELETE'),
        ('damson_claims', 'SELECT, INSERT, UPDATE, DELETE'),
        ('damson_logs', 'SELECT, INSERT, UPDATE, DELETE'),
        ('damson_log_heads', 'SELECT, INSERT, UPDATE, DELETE'),
        ('damson_summaries', 'SELECT, INSERT, UPDATE, DELETE'),
        ('damson_plugins', 'SELECT, INSERT'),
        ('damson_audit', 'SELECT, INSERT'),
        ('damson_tenants', 'SELECT'),
        ('damson_schema', 'SELECT')
        ON CONFLICT (name) DO NOTHING;
    CREATE OR REPLACE FUNCTION damson_add_tenant_role(t TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
    DECLARE r TEXT := damson_role_name(t); g RECORD;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        FOR g IN SELECT name, privileges FROM damson_tenant_tables LOOP
            EXECUTE format('GRANT %s ON %I TO %I', g.privileges, g.name, r);
        END LOOP;
        EXECUTE format('GRANT USAGE ON SEQUENCE damson_audit_seq_seq TO %I', r);
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
        INSERT INTO damson_tenant_roles (tenant, role) VALUES (t, r)
            ON CONFLICT (tenant) DO UPDATE SET role = EXCLUDED.role;
        RETURN r;
    END $$;
    CREATE OR REPLACE FUNCTION damson_drop_tenant_role(t TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
    DECLARE r TEXT; g RECORD;
    BEGIN
        DELETE FROM damson_tenant_roles WHERE tenant = t RETURNING role INTO r;
        IF r IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            FOR g IN SELECT name FROM damson_tenant_tables LOOP
                EXECUTE format('REVOKE ALL ON %I FROM %I', g.name, r);
            END LOOP;
            EXECUTE format('REVOKE ALL ON SEQUENCE damson_audit_seq_seq FROM %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END $$;
    SELECT damson_add_tenant_role(tenant) FROM damson_tenant_roles;",
    ),
    (
        7,
        // Signals: each as it was posted, numbered per process; a key is used once per
        // process (NULL keys never clash). Kept to its tenant as in step 4; the tenant roles
        // that exist are granted the table now.
        "CREATE TABLE IF NOT EXISTS damson_signals (
        tenant TEXT NOT NULL,
        pid TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event TEXT,
        data TEXT,
        key TEXT,
        sent_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, pid, seq),
        UNIQUE (tenant, pid, key)
    );
    ALTER TABLE damson_signals ENABLE ROW LEVEL SECURITY;
    CREATE POLICY damson_own_rows ON damson_signals
        USING (tenant = damson_tenant_of(current_user))
        WITH CHECK (tenant = damson_tenant_of(current_user));
    INSERT INTO damson_tenant_tables (name, privileges)
        VALUES ('damson_signals', 'SELECT, INSERT, UPDATE, DELETE') ON CONFLICT (name) DO NOTHING;
    SELECT damson_add_tenant_role(tenant) FROM damson_tenant_roles;",
    ),
    (
        8,
        // What a waiting process waits for and when its timer fires, in its summary (what
        // `ps` shows). The summaries of live processes are indexed again from their
        // checkpoints, on first reading.
        "ALTER TABLE damson_summaries ADD COLUMN IF NOT EXISTS waiting_for TEXT;
    ALTER TABLE damson_summaries ADD COLUMN IF NOT EXISTS timer BIGINT;
    ALTER TABLE damson_summaries ADD COLUMN IF NOT EXISTS sleeping BOOLEAN NOT NULL DEFAULT false;
    UPDATE damson_summaries SET state = NULL WHERE live;",
    ),
];

/// The advisory lock the schema is brought up to date under (`damson` in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_6461_6d73_6f6e;

/// Apply the migrations the database has not had yet.
pub(super) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS damson_schema (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let current: i32 = txn
        .query_one("SELECT COALESCE(MAX(version), 0) FROM damson_schema", &[])
        .await?
        .get(0);
    for (version, step) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(step).await?;
        txn.execute(
            "INSERT INTO damson_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(
            version,
            "PostgreSQL store: schema brought up to version {version}"
        );
    }
    txn.commit().await
}
