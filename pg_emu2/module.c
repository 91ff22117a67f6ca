/* module.c: the library's entry point. Defines the GUCs; when loaded through
 * shared_preload_libraries it also reserves the shared memory and registers the resident worker. */
#include "emu2_pg.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void emu2_shmem_request(void)
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    emu2_shared_request_space();
}

static void emu2_shmem_startup(void)
{
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();
    emu2_shared_forget();
    (void)emu2_shared();
}

void _PG_init(void)
{
    emu2_pg_define_gucs();
    if (!process_shared_preload_libraries_in_progress)
        return;
    emu2_preloaded = true;
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = emu2_shmem_request;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = emu2_shmem_startup;
    emu2_register_static_worker();
}
