-- emu2 0.1: SQL surface of the emu2 engine. Every call is served by one background worker that keeps
-- the model loaded (docs/sql.md).
\echo Use "CREATE EXTENSION emu2" to load this file. \quit

-- Volatility: STABLE. With greedy or beam search (the default) the answer depends only on the
-- arguments and the loaded model, and the model does not change within a statement unless someone
-- reloads it; it is not IMMUTABLE because emu2_reload() or a new emu2.model_path changes answers,
-- and an IMMUTABLE function could be folded into plans, indexes and constraints.
-- PARALLEL SAFE: a backend only queues its request in shared memory and waits, which parallel
-- workers can do as well; a parallel scan thus feeds several requests at once into the worker's batch.
-- COST: high, so the planner evaluates them as late as it can and considers parallel plans.

CREATE FUNCTION emu2_describe(image bytea, prompt text DEFAULT NULL, max_new_tokens integer DEFAULT NULL,
                              options jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'emu2_sql_describe'
LANGUAGE C STABLE PARALLEL SAFE COST 100000;

COMMENT ON FUNCTION emu2_describe(bytea, text, integer, jsonb) IS
'Text about one image: "Describe the image in details:" or the given prompt (an empty prompt asks for the short caption form)';

CREATE FUNCTION emu2_generate(prompt text, images bytea[], options jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'emu2_sql_generate'
LANGUAGE C STABLE PARALLEL SAFE COST 100000;

COMMENT ON FUNCTION emu2_generate(text, bytea[], jsonb) IS
'Answer to a prompt with one placeholder ("[]" or "[<IMG_PLH>]") per image, in order';

CREATE FUNCTION emu2_generate_image(prompt text, images bytea[] DEFAULT '{}', options jsonb DEFAULT NULL)
RETURNS bytea
AS 'MODULE_PATHNAME', 'emu2_sql_generate_image'
LANGUAGE C STABLE PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION emu2_generate_image(text, bytea[], jsonb) IS
'Emu2-Gen: a PNG image for a prompt with one placeholder per image (models with a generator only)';

CREATE FUNCTION emu2_status(
    OUT worker_pid integer,
    OUT model_state text,
    OUT model_path text,
    OUT device text,
    OUT quant text,
    OUT loaded_at timestamptz,
    OUT load_seconds float8,
    OUT load_error text,
    OUT queue_depth integer,
    OUT in_flight integer,
    OUT requests_served bigint,
    OUT requests_failed bigint,
    OUT requests_cancelled bigint,
    OUT batches bigint,
    OUT avg_batch_size float8,
    OUT max_batch_size integer,
    OUT batch_sizes bigint[],
    OUT tokens_generated bigint,
    OUT tokens_per_second float8,
    OUT worker_started_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'emu2_sql_status'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW emu2_status AS SELECT * FROM emu2_status();

GRANT SELECT ON emu2_status TO PUBLIC;

COMMENT ON VIEW emu2_status IS 'The emu2 worker: model, device, queue, requests, batch sizes (batch_sizes[k] = batches of k requests), tokens/s';

CREATE FUNCTION emu2_reload()
RETURNS text
AS 'MODULE_PATHNAME', 'emu2_sql_reload'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION emu2_reload() IS 'Loads the model again and waits for it; returns the model state';

REVOKE ALL ON FUNCTION emu2_reload() FROM PUBLIC;
