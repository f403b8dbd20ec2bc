"""The funnel walk as a PostgreSQL function (plpgsql): one call per person over the person's
events in order (masks and microsecond times from array_agg(... ORDER BY ...)). The same steps
as apps/insights/queries/funnel_walk.py, which SQLite runs as an aggregate."""

from typing import Any

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION insights_funnel(
    masks integer[], ts bigint[], n integer, window_us bigint, strict boolean,
    start_before bigint, excl_from integer[], excl_to integer[]
) RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    c_start integer[];
    c_reached integer[];
    c_spoiled boolean[];
    c_alive boolean[];
    c_times bigint[];
    nc integer := 0;
    alive integer := 0;
    best_reached integer := 0;
    best_start integer := -1;
    best_times bigint[];
    ne integer := coalesce(array_length(excl_from, 1), 0);
    prune boolean := ne = 0;
    finish boolean;
    i integer; c integer; j integer; k integer; m integer; t bigint; r integer; o integer;
    n_start integer[]; n_reached integer[]; n_spoiled boolean[]; n_times bigint[];
    result bigint[];
BEGIN
    IF prune THEN
        -- Without exclusions only the latest-started chain at each step has a future (same
        -- events ahead, a later window end): one slot per step, no list of chains.
        c_start := array_fill(NULL::integer, ARRAY[n]);
        c_times := array_fill(NULL::bigint, ARRAY[n * n]);
        FOR i IN 1 .. coalesce(array_length(masks, 1), 0) LOOP
            m := masks[i];
            t := ts[i];
            FOR k IN REVERSE n - 1 .. 1 LOOP
                CONTINUE WHEN c_start[k] IS NULL;
                finish := false;
                IF t - c_times[(k - 1) * n + 1] > window_us THEN
                    finish := true;
                ELSIF (m >> k) & 1 = 1 THEN
                    c_times[(k - 1) * n + k + 1] := t;
                    IF k + 1 = n THEN
                        r := n;
                        finish := true;
                    ELSE
                        IF c_start[k + 1] IS NOT NULL AND c_start[k + 1] > c_start[k] THEN
                            -- The chain already there started later: it stays, this one ends.
                            r := k + 1;
                            finish := true;
                        ELSE
                            IF c_start[k + 1] IS NOT NULL AND (k + 1 > best_reached
                                    OR (k + 1 = best_reached AND c_start[k + 1] > best_start))
                            THEN
                                best_reached := k + 1;
                                best_start := c_start[k + 1];
                                best_times := c_times[k * n + 1 : k * n + k + 1];
                            END IF;
                            c_start[k + 1] := c_start[k];
                            FOR j IN 1 .. k + 1 LOOP
                                c_times[k * n + j] := c_times[(k - 1) * n + j];
                            END LOOP;
                            c_start[k] := NULL;
                        END IF;
                    END IF;
                ELSIF strict THEN
                    finish := true;
                END IF;
                IF finish THEN
                    IF NOT ((m >> k) & 1 = 1 AND t - c_times[(k - 1) * n + 1] <= window_us) THEN
                        r := k;
                    END IF;
                    IF r > best_reached OR (r = best_reached AND c_start[k] > best_start) THEN
                        best_reached := r;
                        best_start := c_start[k];
                        best_times := c_times[(k - 1) * n + 1 : (k - 1) * n + r];
                    END IF;
                    c_start[k] := NULL;
                END IF;
            END LOOP;
            IF m & 1 = 1 AND t < start_before THEN
                IF c_start[1] IS NOT NULL AND (1 > best_reached
                        OR (1 = best_reached AND c_start[1] > best_start)) THEN
                    best_reached := 1;
                    best_start := c_start[1];
                    best_times := c_times[1 : 1];
                END IF;
                c_start[1] := i;
                c_times[1] := t;
            END IF;
        END LOOP;
        FOR k IN 1 .. n - 1 LOOP
            CONTINUE WHEN c_start[k] IS NULL;
            IF k > best_reached OR (k = best_reached AND c_start[k] > best_start) THEN
                best_reached := k;
                best_start := c_start[k];
                best_times := c_times[(k - 1) * n + 1 : (k - 1) * n + k];
            END IF;
        END LOOP;
    ELSE
    c_start := '{}';
    c_reached := '{}';
    c_spoiled := '{}';
    c_alive := '{}';
    c_times := '{}';
    FOR i IN 1 .. coalesce(array_length(masks, 1), 0) LOOP
        m := masks[i];
        t := ts[i];
        FOR c IN 1 .. nc LOOP
            CONTINUE WHEN NOT c_alive[c];
            r := c_reached[c];
            finish := false;
            IF t - c_times[(c - 1) * n + 1] > window_us THEN
                finish := true;
            ELSE
                FOR j IN 1 .. ne LOOP
                    IF (m >> (n + j - 1)) & 1 = 1 AND excl_from[j] < r AND r <= excl_to[j] THEN
                        c_spoiled[c] := true;
                    END IF;
                END LOOP;
                IF r < n AND (m >> r) & 1 = 1 THEN
                    r := r + 1;
                    c_reached[c] := r;
                    c_times[(c - 1) * n + r] := t;
                    finish := r = n;
                ELSIF strict THEN
                    finish := true;
                END IF;
            END IF;
            IF finish THEN
                c_alive[c] := false;
                alive := alive - 1;
                IF NOT c_spoiled[c] AND (r > best_reached
                        OR (r = best_reached AND c_start[c] > best_start)) THEN
                    best_reached := r;
                    best_start := c_start[c];
                    best_times := c_times[(c - 1) * n + 1 : (c - 1) * n + r];
                END IF;
            END IF;
        END LOOP;
        IF m & 1 = 1 AND t < start_before THEN
            nc := nc + 1;
            c_start[nc] := i;
            c_reached[nc] := 1;
            c_spoiled[nc] := false;
            c_alive[nc] := true;
            c_times[(nc - 1) * n + 1] := t;
            c_times[nc * n] := c_times[nc * n];
            alive := alive + 1;
        END IF;
        IF prune AND alive > 1 THEN
            -- Without exclusions a later chain at the same step has every future the earlier
            -- one has (same events ahead, a later window end): keep only the latest.
            FOR c IN 1 .. nc LOOP
                CONTINUE WHEN NOT c_alive[c];
                FOR o IN c + 1 .. nc LOOP
                    IF c_alive[o] AND c_reached[o] = c_reached[c] THEN
                        r := c_reached[c];
                        c_alive[c] := false;
                        alive := alive - 1;
                        IF r > best_reached OR (r = best_reached AND c_start[c] > best_start) THEN
                            best_reached := r;
                            best_start := c_start[c];
                            best_times := c_times[(c - 1) * n + 1 : (c - 1) * n + r];
                        END IF;
                        EXIT;
                    END IF;
                END LOOP;
            END LOOP;
        END IF;
        IF nc - alive > 32 AND nc - alive > alive THEN
            -- Forget finished chains, so a long history costs only the chains still open.
            n_start := '{}'; n_reached := '{}'; n_spoiled := '{}'; n_times := '{}';
            o := 0;
            FOR c IN 1 .. nc LOOP
                CONTINUE WHEN NOT c_alive[c];
                o := o + 1;
                n_start[o] := c_start[c];
                n_reached[o] := c_reached[c];
                n_spoiled[o] := c_spoiled[c];
                FOR k IN 1 .. n LOOP
                    n_times[(o - 1) * n + k] := c_times[(c - 1) * n + k];
                END LOOP;
            END LOOP;
            c_start := n_start; c_reached := n_reached; c_spoiled := n_spoiled;
            c_times := n_times; c_alive := array_fill(true, ARRAY[greatest(o, 0)]);
            IF o = 0 THEN c_alive := '{}'; END IF;
            nc := o;
        END IF;
    END LOOP;
    FOR c IN 1 .. nc LOOP
        CONTINUE WHEN NOT c_alive[c];
        r := c_reached[c];
        IF NOT c_spoiled[c] AND (r > best_reached
                OR (r = best_reached AND c_start[c] > best_start)) THEN
            best_reached := r;
            best_start := c_start[c];
            best_times := c_times[(c - 1) * n + 1 : (c - 1) * n + r];
        END IF;
    END LOOP;
    END IF;
    result := array_fill(NULL::bigint, ARRAY[n + 1]);
    result[1] := best_reached;
    FOR k IN 1 .. best_reached LOOP
        result[k + 1] := best_times[k];
    END LOOP;
    RETURN result;
END
$fn$;
"""

DROP = (
    "DROP FUNCTION IF EXISTS insights_funnel(integer[], bigint[], integer, bigint, boolean, "
    "bigint, integer[], integer[]);"
)


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("insights", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
