-- Every SQL function of emu2 on the shipped tiny model (models/emu2-tiny-digits).
\getenv abs_srcdir PG_ABS_SRCDIR
\set heldout :abs_srcdir '/../data/heldout/'
\set examples :abs_srcdir '/../../models/emu2-tiny-digits/examples/'
\set img0 :heldout '000.jpg'
\set img1 :heldout '001.jpg'
\set red :examples 'red_white_3_bottom_left.jpg'
\set yellow :examples 'yellow_white_2_top_right.jpg'
\set green :examples 'green_black_4_bottom_right.jpg'
\set blue :examples 'blue_black_1_top_left.jpg'
\set answers :heldout 'torch_answers.txt'
-- the reference answers (the engine's, equal to PyTorch's) of the held-out images, one per line
CREATE TABLE answers AS SELECT n - 1 AS id, a AS answer
  FROM unnest(string_to_array(rtrim(pg_read_file(:'answers'), E'\n'), E'\n')) WITH ORDINALITY AS t(a, n);

SELECT extname, extversion FROM pg_extension WHERE extname = 'emu2';

-- the short caption form (empty prompt): the reference answers of images 000 and 001
SELECT emu2_describe(pg_read_binary_file(:'img0'), '', 32) = answer AS same_as_reference FROM answers WHERE id = 0;
SELECT emu2_describe(pg_read_binary_file(:'img1'), '') = answer AS same_as_reference FROM answers WHERE id = 1;
-- the default question
SELECT emu2_describe(pg_read_binary_file(:'blue'));
-- greedy through options, and max_new_tokens cutting the answer short
SELECT emu2_describe(pg_read_binary_file(:'img0'), '', NULL, '{"num_beams": 1}') = answer AS greedy_same FROM answers WHERE id = 0;
SELECT length(c) BETWEEN 1 AND length(answer) - 1 AND position(c IN answer) = 1 AS cut_short
  FROM answers, emu2_describe(pg_read_binary_file(:'img0'), '', 3, '{"num_beams": 1}') c WHERE id = 0;
-- sampling with a seed is repeatable
SELECT a = b AS same_sample FROM (SELECT
    emu2_describe(pg_read_binary_file(:'img0'), '', 16, '{"do_sample": true, "num_beams": 1, "seed": 7, "temperature": 0.8, "top_k": 20, "top_p": 0.9}') a,
    emu2_describe(pg_read_binary_file(:'img0'), '', 16, '{"do_sample": true, "num_beams": 1, "seed": 7, "temperature": 0.8, "top_k": 20, "top_p": 0.9}') b) s;

-- the seed's few-shot example: [blue, black, 1, top left]
SELECT emu2_generate('[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]',
                     ARRAY[pg_read_binary_file(:'red'), pg_read_binary_file(:'yellow'),
                           pg_read_binary_file(:'green'), pg_read_binary_file(:'blue')]);
-- the other placeholder spelling, and all generation options at once
SELECT emu2_generate('[<IMG_PLH>]', ARRAY[pg_read_binary_file(:'img1')],
                     '{"max_new_tokens": 32, "num_beams": 3, "length_penalty": -1, "min_length": 1,
                       "repetition_penalty": 1.0, "top_k": 50}') = answer AS same_as_reference FROM answers WHERE id = 1;
-- a prompt without images
SELECT length(emu2_generate('A', '{}', '{"max_new_tokens": 4, "num_beams": 1}')) > 0 AS text_only;

-- emu2_generate_image: the tiny model has no generator, a clean error
\set VERBOSITY sqlstate
SELECT emu2_generate_image('a red circle');
\set VERBOSITY default

-- reload, then the model answers again
SELECT emu2_reload();
SELECT emu2_describe(pg_read_binary_file(:'img0'), '', 32) = answer AS same_as_reference FROM answers WHERE id = 0;

-- the status view
SELECT worker_pid > 0 AS worker, model_state, model_path LIKE '%emu2-tiny-digits' AS path, device, quant,
       loaded_at IS NOT NULL AS loaded, load_error, queue_depth, in_flight,
       requests_served >= 11 AS served, requests_failed >= 1 AS failed, batches >= 11 AS batches,
       max_batch_size >= 1 AS max_batch, batch_sizes[1] >= 1 AS sizes, tokens_generated > 0 AS tokens,
       tokens_per_second > 0 AS speed
  FROM emu2_status;

-- emu2.quant: a new value makes the worker load the model again, with int8 weights
ALTER SYSTEM SET emu2.quant = 'int8';
SELECT pg_reload_conf();
DO $$ BEGIN FOR i IN 1..400 LOOP EXIT WHEN (SELECT quant = 'int8' AND model_state = 'ready' FROM emu2_status); PERFORM pg_sleep(0.025); END LOOP; END $$;
SELECT model_state, quant FROM emu2_status;
SELECT emu2_describe(pg_read_binary_file(:'img0'), '', 32) = answer AS same_as_reference FROM answers WHERE id = 0;
ALTER SYSTEM RESET emu2.quant;
SELECT pg_reload_conf();
DO $$ BEGIN FOR i IN 1..400 LOOP EXIT WHEN (SELECT quant = 'none' AND model_state = 'ready' FROM emu2_status); PERFORM pg_sleep(0.025); END LOOP; END $$;
SELECT model_state, quant FROM emu2_status;
