# mk/cuda.mk: the CUDA backend, $(BUILD)/libemu2_cuda.so (kernels/), loaded by libemu2 with dlopen.
# Built whenever nvcc exists ($(CUDA_HOME)/bin/nvcc, default /usr/local/cuda); skipped with a
# message otherwise, and in the sanitizer / fuzz builds. Host files (kernels/*.c) are C11 built by
# $(CC); kernel files (kernels/*.cu) by nvcc for sm_80, sm_90 and compute_90 PTX (newer GPUs JIT it).
# The library links cuBLASLt, cuBLAS and the CUDA runtime dynamically (rpath to $(CUDA_HOME)/lib64),
# plus its own copies of core/common/{error,tensor}.c and core/ops/{op_checks,conv2d_im2col}.c
# (libemu2 keeps its symbols hidden; the argument checks and the conv2d driver are the CPU
# backend's too, so both backends fail and tile alike).

CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_LIB  := $(BUILD)/libemu2_cuda.so
CUDA_GENCODE ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3
NVCCFLAGS += -std=c++17 $(CUDA_GENCODE) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
             -Icore/include -Icore -Ikernels

CUDA_C   := $(sort $(wildcard kernels/*.c))
CUDA_CU  := $(sort $(wildcard kernels/*.cu))
CUDA_OBJ := $(CUDA_C:kernels/%.c=$(BUILD)/cuda/%.o) $(CUDA_CU:kernels/%.cu=$(BUILD)/cuda/%.cu.o) \
            $(BUILD)/cuda/common_error.o $(BUILD)/cuda/common_tensor.o \
            $(BUILD)/cuda/ops_op_checks.o $(BUILD)/cuda/ops_conv2d_im2col.o

.PHONY: cuda install-cuda clean-cuda

ifeq ($(SAN)$(FUZZ),00)
ifneq ($(wildcard $(NVCC)),)

all: cuda
cuda: $(CUDA_LIB)
install: install-cuda

$(BUILD)/cuda/%.o: kernels/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Ikernels -I$(CUDA_HOME)/include $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/cuda/common_%.o: core/common/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/cuda/ops_%.o: core/ops/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/cuda/%.cu.o: kernels/%.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(CUDA_LIB): $(CUDA_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS) -Wl,--no-undefined -o $@ $^ -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
	    -lcublasLt -lcublas -lcudart -lstdc++ -lm -lpthread

install-cuda: $(CUDA_LIB)
	install -d $(DESTDIR)$(PREFIX)/lib
	install -m 0755 $(CUDA_LIB) $(DESTDIR)$(PREFIX)/lib/libemu2_cuda.so

-include $(CUDA_OBJ:.o=.d)

else

all: cuda
cuda:
	@echo "cuda: $(NVCC) not found: libemu2_cuda.so not built (the cpu backend still works; set CUDA_HOME)"
install-cuda:

endif
endif

clean: clean-cuda
clean-cuda:
	rm -f $(CUDA_LIB) && rm -rf $(BUILD)/cuda
