// sentencepiece_shim.cc: see sentencepiece_shim.h. The only C++ file: it keeps exceptions and C++
// types on this side of the boundary.
#include "text/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "common/error.h"
}

// Sanitizer builds link with the C compiler driver, which leaves out clang's C++ UBSan runtime that
// the vptr check needs (libsentencepiece is not instrumented anyway), so that one check is off here.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("vptr"))), apply_to = function)
#endif

struct emu2_sp {
    sentencepiece::SentencePieceProcessor proc;
};

namespace {

emu2_status fail_exception(emu2_error *err, const char *what)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return emu2_fail(err, EMU2_ERR_NOMEM, "sentencepiece: out of memory while %s", what);
    } catch (const std::exception &e) {
        return emu2_fail(err, EMU2_ERR_INTERNAL, "sentencepiece: %s while %s", e.what(), what);
    } catch (...) {
        return emu2_fail(err, EMU2_ERR_INTERNAL, "sentencepiece: unknown exception while %s", what);
    }
}

bool in_range(const emu2_sp *sp, int32_t id)
{
    return sp && id >= 0 && id < sp->proc.GetPieceSize();
}

template <typename LoadFn>
emu2_status load_with(LoadFn load, const char *what, emu2_sp **out, emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "sentencepiece: no output handle");
    *out = nullptr;
    emu2_sp *sp = new (std::nothrow) emu2_sp;
    if (!sp)
        return emu2_fail(err, EMU2_ERR_NOMEM, "sentencepiece: out of memory");
    try {
        const sentencepiece::util::Status st = load(sp->proc);
        if (!st.ok()) {
            delete sp;
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s: not a usable SentencePiece model (%s)", what,
                             st.ToString().c_str());
        }
        if (sp->proc.GetPieceSize() <= 0) {
            delete sp;
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s: SentencePiece model has no pieces", what);
        }
    } catch (...) {
        delete sp;
        return fail_exception(err, "loading the model");
    }
    *out = sp;
    return EMU2_OK;
}

} // namespace

extern "C" {

emu2_status emu2_sp_load_file(const char *path, emu2_sp **out, emu2_error *err)
{
    if (!path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "sentencepiece: no model path");
    return load_with([path](sentencepiece::SentencePieceProcessor &p) { return p.Load(path); }, path,
                     out, err);
}

emu2_status emu2_sp_load_memory(const void *data, size_t size, emu2_sp **out, emu2_error *err)
{
    if (!data && size)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "sentencepiece: no model bytes");
    return load_with(
        [data, size](sentencepiece::SentencePieceProcessor &p) {
            return p.LoadFromSerializedProto(
                absl::string_view(static_cast<const char *>(data ? data : ""), size));
        },
        "SentencePiece model in memory", out, err);
}

void emu2_sp_free(emu2_sp *sp)
{
    delete sp;
}

int32_t emu2_sp_piece_size(const emu2_sp *sp)
{
    return sp ? sp->proc.GetPieceSize() : 0;
}

const char *emu2_sp_id_to_piece(const emu2_sp *sp, int32_t id)
{
    return in_range(sp, id) ? sp->proc.IdToPiece(id).c_str() : nullptr;
}

int32_t emu2_sp_piece_to_id(const emu2_sp *sp, const char *piece, size_t len)
{
    if (!sp || (!piece && len))
        return -1;
    try {
        const absl::string_view want(piece ? piece : "", len);
        const int id = sp->proc.PieceToId(want);
        // PieceToId answers unk_id for unknown strings: accept it only for the unknown piece itself.
        if (!in_range(sp, id) || absl::string_view(sp->proc.IdToPiece(id)) != want)
            return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

int emu2_sp_is_byte(const emu2_sp *sp, int32_t id)
{
    return in_range(sp, id) && sp->proc.IsByte(id);
}

int emu2_sp_is_control(const emu2_sp *sp, int32_t id)
{
    return in_range(sp, id) && sp->proc.IsControl(id);
}

int emu2_sp_is_unknown(const emu2_sp *sp, int32_t id)
{
    return in_range(sp, id) && sp->proc.IsUnknown(id);
}

int32_t emu2_sp_unk_id(const emu2_sp *sp)
{
    return sp ? sp->proc.unk_id() : -1;
}

int32_t emu2_sp_bos_id(const emu2_sp *sp)
{
    return sp ? sp->proc.bos_id() : -1;
}

int32_t emu2_sp_eos_id(const emu2_sp *sp)
{
    return sp ? sp->proc.eos_id() : -1;
}

emu2_status emu2_sp_encode_append(const emu2_sp *sp, const char *text, size_t len, emu2_id_vec *ids,
                                  emu2_error *err)
{
    if (!sp || !ids || (!text && len))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "sentencepiece: bad encode arguments");
    try {
        std::vector<int> got;
        const sentencepiece::util::Status st =
            sp->proc.Encode(absl::string_view(text ? text : "", len), &got);
        if (!st.ok())
            return emu2_fail(err, EMU2_ERR_FORMAT, "sentencepiece could not encode the text (%s)",
                             st.ToString().c_str());
        for (int id : got) {
            const emu2_status s = emu2_id_vec_push(ids, id, err);
            if (s != EMU2_OK)
                return s;
        }
        return EMU2_OK;
    } catch (...) {
        return fail_exception(err, "encoding");
    }
}

emu2_status emu2_sp_decode_append(const emu2_sp *sp, const int32_t *ids, size_t n_ids,
                                  emu2_text_buf *out, emu2_error *err)
{
    if (!sp || !out || (!ids && n_ids))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "sentencepiece: bad decode arguments");
    if (n_ids == 0)
        return emu2_text_buf_append(out, "", 0, err);
    try {
        std::vector<int> v(ids, ids + n_ids);
        for (size_t i = 0; i < n_ids; i++)
            if (!in_range(sp, v[i]))
                return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                                 "token id %d is not a SentencePiece id (0..%d)", v[i],
                                 sp->proc.GetPieceSize() - 1);
        std::string text;
        const sentencepiece::util::Status st = sp->proc.Decode(v, &text);
        if (!st.ok())
            return emu2_fail(err, EMU2_ERR_FORMAT, "sentencepiece could not decode the ids (%s)",
                             st.ToString().c_str());
        return emu2_text_buf_append(out, text.data(), text.size(), err);
    } catch (...) {
        return fail_exception(err, "decoding");
    }
}

} // extern "C"

#if defined(__clang__)
#pragma clang attribute pop
#endif
