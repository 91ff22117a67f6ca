/* isa.c: picks the kernel set at run time, so one binary runs everywhere and uses AVX-512 where
 * the CPU has it (the build itself needs no -mavx flags). */
#include "ops/cpu/kern_bf16dot.h"
#include "ops/cpu/kernels.h"

#ifdef EMU2_CPU_X86
#include <cpuid.h>

/* F16C by CPUID (leaf 1, ECX bit 29): clang's __builtin_cpu_supports does not know "f16c". */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

int cpu_isa_supported(emu2_cpu_isa isa)
{
    switch (isa) {
    case EMU2_ISA_SCALAR:
        return 1;
#ifdef EMU2_CPU_X86
    case EMU2_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case EMU2_ISA_AVX512:
        __builtin_cpu_init();
        return cpu_isa_supported(EMU2_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    default:
        return 0;
    }
}

/* AVX512_BF16 (vdpbf16ps) by CPUID leaf 7 subleaf 1, EAX bit 5, on top of the AVX-512 level
 * (which also checked that the OS saves the zmm registers). */
int cpu_bf16dot_supported(void)
{
#ifdef EMU2_CPU_X86
    unsigned a, b, c, d;
    if (!cpu_isa_supported(EMU2_ISA_AVX512) || __get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1u;
#else
    return 0;
#endif
}

const cpu_kernels *cpu_kernels_select(emu2_cpu_isa max_isa)
{
    if (max_isa == EMU2_ISA_AUTO)
        max_isa = EMU2_ISA_AVX512;
#ifdef EMU2_CPU_X86
    if (max_isa >= EMU2_ISA_AVX512 && cpu_isa_supported(EMU2_ISA_AVX512))
        return &cpu_kernels_avx512;
    if (max_isa >= EMU2_ISA_AVX2 && cpu_isa_supported(EMU2_ISA_AVX2))
        return &cpu_kernels_avx2;
#endif
    return &cpu_kernels_scalar;
}

const char *emu2_cpu_isa_name(emu2_cpu_isa isa)
{
    switch (isa) {
    case EMU2_ISA_AUTO:
        return "auto";
    case EMU2_ISA_SCALAR:
        return "scalar";
    case EMU2_ISA_AVX2:
        return "avx2";
    case EMU2_ISA_AVX512:
        return "avx512";
    }
    return "unknown";
}
