-- Every user error: SQLSTATE and message, one call at a time; the worker survives them all.
\getenv abs_srcdir PG_ABS_SRCDIR
\set img0 :abs_srcdir '/../data/heldout/000.jpg'
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE img AS SELECT pg_read_binary_file(:'img0') AS b;
SELECT pid AS worker_pid FROM emu2_status() s(pid) \gset
SELECT emu2_describe(b, '', 32) AS first_answer FROM img \gset

-- NULLs
SELECT try($$SELECT emu2_describe(NULL)$$);
SELECT try($$SELECT emu2_generate(NULL, '{}')$$);
SELECT try($$SELECT emu2_generate('[]', NULL)$$);
SELECT try($$SELECT emu2_generate('[][]', ARRAY[(SELECT b FROM img), NULL])$$);
-- placeholders vs images
SELECT try($$SELECT emu2_generate('[] and []', ARRAY[(SELECT b FROM img)])$$);
SELECT try($$SELECT emu2_generate('no placeholder', ARRAY[(SELECT b FROM img)])$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), 'two [] here')$$);
SELECT try($$SELECT emu2_generate('', '{}')$$);
-- corrupt, truncated, empty, not an image
SELECT try($$SELECT emu2_describe('\x00010203'::bytea)$$);
SELECT try($$SELECT emu2_describe(''::bytea)$$);
SELECT try($$SELECT emu2_describe(substring((SELECT b FROM img) FROM 1 FOR 300))$$);
SELECT try($$SELECT emu2_describe(convert_to('GIF89a not supported', 'UTF8'))$$);
SELECT try($$SELECT emu2_describe('\x89504e470d0a1a0a0000000d4948445200000000000000010806000000'::bytea)$$);
-- decompression bombs: tiny files whose headers claim 100000 x 100000 pixels
SELECT try($$SELECT emu2_describe('\x89504e470d0a1a0a0000000d49484452000186a0000186a00806000000'::bytea)$$);
SELECT try($$SELECT emu2_describe('\xffd8ffc0001108ffffffff03012200021101031101'::bytea)$$);
-- limits
SET emu2.max_image_bytes = 1;
SELECT try($$SELECT emu2_describe((SELECT b FROM img))$$);
RESET emu2.max_image_bytes;
SET emu2.max_images = 1;
SELECT try($$SELECT emu2_generate('[][]', ARRAY[(SELECT b FROM img), (SELECT b FROM img)])$$);
RESET emu2.max_images;
SET emu2.max_new_tokens = 8;
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', 9)$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"max_new_tokens": 100}')$$);
RESET emu2.max_new_tokens;
SET emu2.max_pixels = 1000;
SELECT try($$SELECT emu2_describe((SELECT b FROM img))$$);
RESET emu2.max_pixels;
SELECT try($$SELECT emu2_describe((SELECT b FROM img), repeat('[red] ', 400), 4)$$);
-- options
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', 0)$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"num_beams": 0}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"num_beams": 2.5}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"beams": 2}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"do_sample": 1}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"temperature": 0}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"top_p": 1.5}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"seed": -1}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '{"max_new_tokens": "8"}')$$);
SELECT try($$SELECT emu2_describe((SELECT b FROM img), '', NULL, '[1, 2]')$$);
SELECT try($$SELECT emu2_generate_image('x', '{}', '{"width": 12}')$$);
SELECT try($$SELECT emu2_generate_image('x', '{}', '{"num_beams": 1}')$$);

-- the model not configured, then failing to load, then back
ALTER SYSTEM SET emu2.model_path = '';
SELECT pg_reload_conf();
DO $$ BEGIN FOR i IN 1..400 LOOP EXIT WHEN (SELECT model_state FROM emu2_status) = 'not configured'; PERFORM pg_sleep(0.025); END LOOP; END $$;
SELECT model_state, model_path FROM emu2_status;
SELECT try($$SELECT emu2_describe((SELECT b FROM img))$$);
ALTER SYSTEM SET emu2.model_path = '/nonexistent/model';
SELECT pg_reload_conf();
DO $$ BEGIN FOR i IN 1..400 LOOP EXIT WHEN (SELECT model_state FROM emu2_status) = 'failed'; PERFORM pg_sleep(0.025); END LOOP; END $$;
SELECT model_state, load_error IS NOT NULL AS has_reason FROM emu2_status;
SELECT try($$SELECT emu2_describe((SELECT b FROM img))$$) ~ '^58000: emu2: could not load the model at "/nonexistent/model": .+' AS load_failed;
SELECT try($$SELECT emu2_reload()$$) ~ '^58000: ' AS reload_failed;
ALTER SYSTEM RESET emu2.model_path;
SELECT pg_reload_conf();
DO $$ BEGIN FOR i IN 1..400 LOOP EXIT WHEN (SELECT model_state FROM emu2_status) = 'ready'; PERFORM pg_sleep(0.025); END LOOP; END $$;
SELECT model_state FROM emu2_status;
SELECT emu2_describe((SELECT b FROM img), '', 32) = :'first_answer' AS answers_again;

-- the same worker served all of that
SELECT worker_pid = :worker_pid AS same_worker FROM emu2_status;
