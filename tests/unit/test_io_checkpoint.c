/* test_io_checkpoint.c: model folders -> one canonical tensor naming (checkpoint.h): the reference
 * kit's test models (torch .bin sharded + native names, safetensors + HF names, Emu2-Gen layout),
 * torch .bin shards with known values, and hostile folders. */
#include <math.h>
#include <sys/stat.h>

#include "check.h"
#include "io/checkpoint.h"
#include "test_io_st_writer.h"
#include "test_io_util.h"

TEST(canonical_names)
{
    char b[256];
    CHECK(emu2_canonical_name("model.visual.blocks.3.norm1.weight", b, sizeof b) == 1 &&
          !strcmp(b, "visual.blocks.3.norm1.weight"));
    CHECK(emu2_canonical_name("visual.blocks.3.attn.q_bias", b, sizeof b) == 1 && !strcmp(b, "visual.blocks.3.attn.q_bias"));
    CHECK(emu2_canonical_name("model.visual.blocks.3.attn.qkv.bias", b, sizeof b) == 2 &&
          !strcmp(b, "visual.blocks.3.attn."));
    CHECK(emu2_canonical_name("model.decoder.lm.model.layers.0.self_attn.rotary_emb.inv_freq", b, sizeof b) == 0);
    CHECK(emu2_canonical_name("model.decoder.lm.lm_head.weight", b, sizeof b) == 1 && !strcmp(b, "decoder.lm.lm_head.weight"));
    CHECK(emu2_canonical_name("project_up.weight", b, sizeof b) == 1 && !strcmp(b, "project_up.weight"));
    CHECK(emu2_canonical_name("multimodal_encoder.model.visual.cls_token", b, sizeof b) == 1 &&
          !strcmp(b, "visual.cls_token"));
    CHECK(emu2_canonical_name("model.other.thing", b, sizeof b) == 1 && !strcmp(b, "model.other.thing"));
    CHECK(emu2_canonical_name("visual.blocks.3.attn.q_bias", b, 8) == -1);
}

static float f32_at(const emu2_tensor_view *v, size_t i)
{
    float f;
    memcpy(&f, (const uint8_t *)v->data + 4 * i, 4);
    return f;
}

TEST(sharded_torch_bin_with_known_values)
{
    emu2_checkpoint *ck;
    emu2_error e = {0};
    CHECKF(emu2_checkpoint_open(ROOT_PATH("tests/data/io/sharded"), &ck, &e) == EMU2_OK, "%s", e.message);
    CHECK(!strcmp(ck->format, "pytorch") && ck->index_file && !strcmp(ck->index_file, "pytorch_model.bin.index.json"));
    CHECK(ck->n_files == 2 && ck->n_tensors == 4 && ck->has_native_names && !ck->has_hf_names);
    static const struct {
        const char *name;
        int seed;
        size_t numel;
    } want[] = {{"visual.cls_token", 10, 8}, {"project_up.weight", 11, 32}, {"project_down.weight", 12, 32},
                {"decoder.lm.model.norm.weight", 13, 4}};
    for (size_t k = 0; k < 4; k++) {
        const emu2_ckpt_tensor *t = emu2_checkpoint_find(ck, want[k].name);
        CHECKF(t != NULL, "%s missing", want[k].name);
        CHECK(t->view.dtype == EMU2_DT_F32 && emu2_tensor_numel(&t->view) == want[k].numel);
        for (size_t i = 0; i < want[k].numel; i++)
            CHECK(f32_at(&t->view, i) == (float)((double)((i * 7 + (size_t)want[k].seed) % 127) * 0.25 - 15.75));
    }
    CHECK(emu2_checkpoint_find(ck, "nope") == NULL);
    emu2_checkpoint_close(ck);
}

TEST(reference_model_native_bin)
{
    const char *dir = ROOT_PATH("tests/models/rand-vis448");
    if (access(dir, R_OK) != 0)
        SKIP("tests/models/rand-vis448 not generated");
    emu2_checkpoint *ck;
    emu2_error e = {0};
    CHECKF(emu2_checkpoint_open(dir, &ck, &e) == EMU2_OK, "%s", e.message);
    CHECK(!strcmp(ck->format, "pytorch") && ck->n_files > 1 && ck->has_native_names && !ck->has_hf_names &&
          !ck->fused_qkv_bias);
    const emu2_ckpt_tensor *q = emu2_checkpoint_find(ck, "visual.blocks.0.attn.q_bias");
    CHECK(q && q->view.ndim == 1 && !strcmp(q->stored_name, "visual.blocks.0.attn.q_bias"));
    CHECK(emu2_checkpoint_find(ck, "visual.blocks.0.attn.k_bias") == NULL);
    CHECK(emu2_checkpoint_find(ck, "decoder.lm.lm_head.weight") != NULL);
    for (size_t i = 1; i < ck->n_tensors; i++) /* sorted, unique */
        CHECK(strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) < 0);
    emu2_checkpoint_close(ck);
}

TEST(reference_model_hf_safetensors_fused_bias_views)
{
    const char *dir = ROOT_PATH("tests/models/rand-chat");
    if (access(dir, R_OK) != 0)
        SKIP("tests/models/rand-chat not generated");
    emu2_checkpoint *ck;
    emu2_error e = {0};
    CHECKF(emu2_checkpoint_open(dir, &ck, &e) == EMU2_OK, "%s", e.message);
    CHECK(!strcmp(ck->format, "safetensors") && ck->has_hf_names && !ck->has_native_names && ck->fused_qkv_bias);
    const emu2_ckpt_tensor *q = emu2_checkpoint_find(ck, "visual.blocks.1.attn.q_bias");
    const emu2_ckpt_tensor *k = emu2_checkpoint_find(ck, "visual.blocks.1.attn.k_bias");
    const emu2_ckpt_tensor *v = emu2_checkpoint_find(ck, "visual.blocks.1.attn.v_bias");
    CHECK(q && k && v && !strcmp(q->stored_name, "model.visual.blocks.1.attn.qkv.bias"));
    int64_t w = q->view.shape[0];
    size_t es = emu2_dtype_size(q->view.dtype);
    CHECK(k->view.shape[0] == w && v->view.shape[0] == w && q->view.nbytes == (uint64_t)w * es);
    /* zero-copy: three consecutive slices of the one stored tensor */
    CHECK((const uint8_t *)k->view.data == (const uint8_t *)q->view.data + w * (int64_t)es);
    CHECK((const uint8_t *)v->view.data == (const uint8_t *)q->view.data + 2 * w * (int64_t)es);
    /* the reference kit writes cat(q, 0, v): the k third is zero, q is not */
    int k_zero = 1, q_nonzero = 0;
    for (uint64_t i = 0; i < k->view.nbytes; i++)
        k_zero &= ((const uint8_t *)k->view.data)[i] == 0;
    for (uint64_t i = 0; i < q->view.nbytes; i++)
        q_nonzero |= ((const uint8_t *)q->view.data)[i] != 0;
    CHECK(k_zero && q_nonzero);
    CHECK(emu2_checkpoint_find(ck, "visual.blocks.1.attn.qkv.bias") == NULL);
    emu2_checkpoint_close(ck);
}

TEST(emu2_gen_layout_multimodal_encoder)
{
    const char *dir = ROOT_PATH("tests/models/gen-tiny");
    if (access(dir, R_OK) != 0)
        SKIP("tests/models/gen-tiny not generated");
    emu2_checkpoint *ck;
    emu2_error e = {0};
    CHECKF(emu2_checkpoint_open(dir, &ck, &e) == EMU2_OK, "%s", e.message);
    CHECK(strstr(ck->weights_dir, "multimodal_encoder") && ck->n_files >= 1 && ck->index_file);
    CHECK(emu2_checkpoint_find(ck, "project_down.weight") != NULL);
    emu2_checkpoint_close(ck);
}

/* ---- hostile or broken folders, built in a temp dir */

static char tmp[512];

static int write_st(const char *name, const st_spec *t, size_t n)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    return st_write(p, t, n, 0);
}

static emu2_status open_tmp(emu2_error *e)
{
    emu2_checkpoint *ck = NULL;
    emu2_status st = emu2_checkpoint_open(tmp, &ck, e);
    emu2_checkpoint_close(ck);
    return st;
}

static void fresh_tmp(void)
{
    if (tmp[0])
        io_rm_tree(tmp);
    io_temp_dir(tmp, sizeof tmp, "ckpt");
}

TEST(hostile_folders)
{
    emu2_error e = {0};
    st_spec a[] = {st_tensor("visual.cls_token", "F32", 3, 1, 1, 4, 0), st_tensor("project_up.weight", "BF16", 2, 3, 4, 0, 0)};

    fresh_tmp();
    CHECK(open_tmp(&e) == EMU2_ERR_IO && strstr(e.message, "no weights found"));

    fresh_tmp(); /* index naming a file outside the folder */
    CHECK(write_st("model-00001-of-00001.safetensors", a, 2));
    CHECK(io_write_text(tmp, "model.safetensors.index.json",
                        "{\"weight_map\":{\"visual.cls_token\":\"../../etc/passwd\"}}"));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "not a plain file name"), "%s", e.message);

    fresh_tmp(); /* index naming a missing shard */
    CHECK(io_write_text(tmp, "model.safetensors.index.json", "{\"weight_map\":{\"visual.cls_token\":\"gone.safetensors\"}}"));
    CHECK(open_tmp(&e) == EMU2_ERR_IO);
    CHECKF(strstr(e.message, "gone.safetensors"), "%s", e.message);

    fresh_tmp(); /* index listing a tensor its shard lacks */
    CHECK(write_st("s1.safetensors", a, 2));
    CHECK(io_write_text(tmp, "model.safetensors.index.json",
                        "{\"weight_map\":{\"visual.cls_token\":\"s1.safetensors\",\"visual.pos_embed\":\"s1.safetensors\"}}"));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "'visual.pos_embed' in s1.safetensors, which does not hold it"), "%s", e.message);

    fresh_tmp(); /* Emu2-Gen: index.json names fp32 shards that are absent, index.bf16.json the present ones */
    CHECK(write_st("model.bf16-00001-of-00001.safetensors", a, 2));
    CHECK(io_write_text(tmp, "model.safetensors.index.json",
                        "{\"weight_map\":{\"visual.cls_token\":\"model-00001-of-00001.safetensors\","
                        "\"project_up.weight\":\"model-00001-of-00001.safetensors\"}}"));
    CHECK(io_write_text(tmp, "model.safetensors.index.bf16.json",
                        "{\"weight_map\":{\"visual.cls_token\":\"model.bf16-00001-of-00001.safetensors\","
                        "\"project_up.weight\":\"model.bf16-00001-of-00001.safetensors\"}}"));
    {
        emu2_checkpoint *gk = NULL;
        CHECKF(emu2_checkpoint_open(tmp, &gk, &e) == EMU2_OK, "%s", e.message);
        int good = gk->n_tensors == 2 && !strcmp(gk->index_file, "model.safetensors.index.bf16.json");
        emu2_checkpoint_close(gk);
        CHECK(good);
    }

    fresh_tmp(); /* index that is not JSON, or has no weight_map */
    CHECK(io_write_text(tmp, "model.safetensors.index.json", "{\"weight_map\": [1,"));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT && strstr(e.message, "invalid JSON"));
    CHECK(io_write_text(tmp, "model.safetensors.index.json", "{\"metadata\":{}}"));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT && strstr(e.message, "weight_map"));

    fresh_tmp(); /* the same block's bias given both ways */
    st_spec dup[] = {st_tensor("model.visual.blocks.0.attn.qkv.bias", "F32", 1, 12, 0, 0, 0),
                     st_tensor("visual.blocks.0.attn.q_bias", "F32", 1, 4, 0, 0, 0)};
    CHECK(write_st("model.safetensors", dup, 2));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "'visual.blocks.0.attn.q_bias' appears twice"), "%s", e.message);

    fresh_tmp(); /* a fused bias that cannot be split in three */
    st_spec odd[] = {st_tensor("model.visual.blocks.0.attn.qkv.bias", "F32", 1, 7, 0, 0, 0)};
    CHECK(write_st("model.safetensors", odd, 1));
    CHECK(open_tmp(&e) == EMU2_ERR_MISMATCH);
    CHECKF(strstr(e.message, "[3*width]"), "%s", e.message);

    fresh_tmp(); /* two loose files and no index */
    CHECK(write_st("a.safetensors", a, 2) && write_st("b.safetensors", a, 2));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT && strstr(e.message, "several"));

    fresh_tmp(); /* a corrupt model.safetensors: the error names the file */
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    CHECK(io_write_file(path, "\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", 8 + 17));
    CHECK(open_tmp(&e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "model.safetensors: safetensors header is not valid JSON"), "%s", e.message);

    fresh_tmp(); /* a single file under another name (native releases), prefixed, with inv_freq buffers */
    st_spec gen[] = {st_tensor("multimodal_encoder.project_up.weight", "BF16", 2, 3, 4, 0, 0),
                     st_tensor("multimodal_encoder.decoder.lm.model.layers.0.self_attn.rotary_emb.inv_freq", "F32", 1,
                               4, 0, 0, 0)};
    CHECK(write_st("Emu2-Gen_pytorch_model.bf16.safetensors", gen, 2));
    emu2_checkpoint *ck = NULL;
    CHECKF(emu2_checkpoint_open(tmp, &ck, &e) == EMU2_OK, "%s", e.message);
    CHECK(ck->n_tensors == 1 && ck->n_ignored == 1 && emu2_checkpoint_find(ck, "project_up.weight"));
    emu2_checkpoint_close(ck);

    io_rm_tree(tmp);
    tmp[0] = '\0';
}

int main(void)
{
    RUN(canonical_names);
    RUN(sharded_torch_bin_with_known_values);
    RUN(reference_model_native_bin);
    RUN(reference_model_hf_safetensors_fused_bias_views);
    RUN(emu2_gen_layout_multimodal_encoder);
    RUN(hostile_folders);
    if (tmp[0])
        io_rm_tree(tmp);
    return check_finish();
}
