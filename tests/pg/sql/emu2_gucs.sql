-- emu2.* settings: defaults, ranges, who may change them. Without shared_preload_libraries the
-- settings exist once the library is loaded in the session (first call, or LOAD).
LOAD 'emu2';
SELECT name, setting, unit, context, vartype, min_val, max_val, enumvals
  FROM pg_settings WHERE name LIKE 'emu2.%' AND name <> 'emu2.model_path' AND name <> 'emu2.threads' ORDER BY name;
-- model and device settings belong in postgresql.conf (ALTER SYSTEM) only
SET emu2.model_path = '/tmp';
SET emu2.device = 'cpu';
SET emu2.max_batch = 4;
-- values are checked
ALTER SYSTEM SET emu2.device = 'gpu';
ALTER SYSTEM SET emu2.device = 'cuda:x';
ALTER SYSTEM SET emu2.device = 'cuda:0';
ALTER SYSTEM SET emu2.device = 'cuda:0,1';
ALTER SYSTEM SET emu2.device = 'cuda:0,';
ALTER SYSTEM SET emu2.device = 'cuda:,1';
ALTER SYSTEM RESET emu2.device;
ALTER SYSTEM SET emu2.quant = 'int3';
ALTER SYSTEM SET emu2.precision = 'f16';
ALTER SYSTEM SET emu2.precision = 'bf16';
ALTER SYSTEM RESET emu2.precision;
SET emu2.precision = 'bf16';
ALTER SYSTEM SET emu2.max_batch = 0;
ALTER SYSTEM SET emu2.max_batch = 65;
ALTER SYSTEM SET emu2.threads = -1;
SET emu2.max_new_tokens = 0;
SET emu2.max_images = 1000;
SET emu2.max_image_bytes = '2GB';
SET emu2.max_image_bytes = '1MB';
SHOW emu2.max_image_bytes;
RESET emu2.max_image_bytes;
SET emu2.request_timeout = '1s';
SHOW emu2.request_timeout;
RESET emu2.request_timeout;
SET emu2.no_such_setting = 1;
-- an ordinary user: may call the functions, may not see the model path, change limits or reload
CREATE ROLE emu2_user;
GRANT pg_read_server_files TO emu2_user;
SET ROLE emu2_user;
SHOW emu2.model_path;
SET emu2.max_images = 2;
SELECT emu2_reload();
SELECT model_state, model_path FROM emu2_status;
SET emu2.request_timeout = '10s';
RESET ROLE;
DROP ROLE emu2_user;
