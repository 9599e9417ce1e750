# Third-party libraries (zlib, zstd, BearSSL, libdeflate's decompressor) and
# libc-mini.
#
# tools/fetch-sources.sh fetches the pinned Debian source packages and
# unpacks them into build/deps/src/; each library is then compiled twice
# from the same sources:
#   firmware: build/deps/efi/lib*.a  freestanding, against libc-mini's headers
#   host:     build/deps/host/lib*.a ordinary -O2 -fPIC objects
# Both flavours use $(DEPS_DEFS) (Z_SOLO, ZSTD_NO_TRACE);
# code including zlib.h or zstd.h must be compiled with $(DEPS_DEFS) too
# (zlib.h's declarations differ without Z_SOLO).
#
# Exported: ZLIB_INC ZSTD_INC BEARSSL_INC LIBDEFLATE_INC (directories to
# pass with -I or -isystem), DEPS_EFI_LIBS, DEPS_HOST_LIBS, LIBC_MINI_SRCS,
# LIBC_MINI_HDRS, LIBC_MINI_TEST_BIN, CHECK_SYMBOLS, the phony target `deps`.
# Also LIBDEFLATE_NAMES, ZLIB_NAMES, ZSTD_NAMES and DEPS_LIBCFLAGS_* for
# builds that compile the libraries again (mk/fuzz.mk).
#
# Third-party code is compiled with the compiler's default warnings and
# never with -Werror. `make V=1` shows the full commands.

DEPS_DIR := build/deps
DEPS_SRC := $(DEPS_DIR)/src
# Touched once the pinned sources are verified and unpacked.
DEPS_FETCHED := $(DEPS_SRC)/.fetched

ZLIB_DIR := $(DEPS_SRC)/zlib
ZSTD_DIR := $(DEPS_SRC)/zstd/lib
BEARSSL_DIR := $(DEPS_SRC)/bearssl
LIBDEFLATE_DIR := $(DEPS_SRC)/libdeflate

ZLIB_INC := $(ZLIB_DIR)
ZSTD_INC := $(ZSTD_DIR)
BEARSSL_INC := $(BEARSSL_DIR)/inc
LIBDEFLATE_INC := $(LIBDEFLATE_DIR)

CHECK_SYMBOLS := tools/check-symbols.sh

LIBC_MINI_SRCS := $(wildcard libc-mini/src/*.c)
LIBC_MINI_HDRS := $(wildcard libc-mini/include/*.h)

# --- source lists (fixed by the pinned versions in tools/sources.sha256) ---

# zlib without gz*, compress/uncompress and infback: only the stream API.
ZLIB_NAMES := adler32 crc32 deflate inflate inffast inftrees trees zutil

# zstd: decompression, and single-threaded compression for writing
# compressed clusters (no legacy formats, no dictionary builder, no
# multi-threaded compressor).
ZSTD_NAMES := common/debug common/entropy_common common/error_private common/fse_decompress \
        common/xxhash common/zstd_common \
        decompress/huf_decompress decompress/zstd_ddict decompress/zstd_decompress \
        decompress/zstd_decompress_block \
        compress/fse_compress compress/hist compress/huf_compress compress/zstd_compress \
        compress/zstd_compress_literals compress/zstd_compress_sequences \
        compress/zstd_compress_superblock compress/zstd_double_fast compress/zstd_fast \
        compress/zstd_lazy compress/zstd_ldm compress/zstd_opt

# libdeflate: the DEFLATE decompressor only (no compressor, no zlib/gzip
# wrappers, no checksums); cpu_features picks the BMI2 variant at run time.
LIBDEFLATE_NAMES := lib/deflate_decompress lib/utils lib/x86/cpu_features

# BearSSL: all of src/ (what is unused is left out by the linker). The list
# is checked against the unpacked tree when the sources are fetched.
BEARSSL_NAMES := $(addprefix aead/,ccm eax gcm) \
    $(addprefix codec/,ccopy dec16be dec16le dec32be dec32le dec64be dec64le enc16be enc16le \
        enc32be enc32le enc64be enc64le pemdec pemenc) \
    $(addprefix ec/,ec_all_m15 ec_all_m31 ec_c25519_i15 ec_c25519_i31 ec_c25519_m15 \
        ec_c25519_m31 ec_curve25519 ec_default ec_keygen ec_p256_m15 ec_p256_m31 ec_prime_i15 \
        ec_prime_i31 ec_pubkey ec_secp256r1 ec_secp384r1 ec_secp521r1 ecdsa_atr \
        ecdsa_default_sign_asn1 ecdsa_default_sign_raw ecdsa_default_vrfy_asn1 \
        ecdsa_default_vrfy_raw ecdsa_i15_bits ecdsa_i15_sign_asn1 ecdsa_i15_sign_raw \
        ecdsa_i15_vrfy_asn1 ecdsa_i15_vrfy_raw ecdsa_i31_bits ecdsa_i31_sign_asn1 \
        ecdsa_i31_sign_raw ecdsa_i31_vrfy_asn1 ecdsa_i31_vrfy_raw ecdsa_rta) \
    $(addprefix hash/,dig_oid dig_size ghash_ctmul ghash_ctmul32 ghash_ctmul64 ghash_pclmul \
        ghash_pwr8 md5 md5sha1 mgf1 multihash sha1 sha2big sha2small) \
    $(addprefix int/,i15_add i15_bitlen i15_decmod i15_decode i15_decred i15_encode i15_fmont \
        i15_iszero i15_moddiv i15_modpow i15_modpow2 i15_montmul i15_mulacc i15_muladd \
        i15_ninv15 i15_reduce i15_rshift i15_sub i15_tmont i31_add i31_bitlen i31_decmod \
        i31_decode i31_decred i31_encode i31_fmont i31_iszero i31_moddiv i31_modpow \
        i31_modpow2 i31_montmul i31_mulacc i31_muladd i31_ninv31 i31_reduce i31_rshift \
        i31_sub i31_tmont i32_add i32_bitlen i32_decmod i32_decode i32_decred i32_div32 \
        i32_encode i32_fmont i32_iszero i32_modpow i32_montmul i32_mulacc i32_muladd \
        i32_ninv32 i32_reduce i32_sub i32_tmont i62_modpow2) \
    kdf/hkdf \
    $(addprefix mac/,hmac hmac_ct) \
    $(addprefix rand/,aesctr_drbg hmac_drbg sysrng) \
    $(addprefix rsa/,rsa_default_keygen rsa_default_modulus rsa_default_oaep_decrypt \
        rsa_default_oaep_encrypt rsa_default_pkcs1_sign rsa_default_pkcs1_vrfy \
        rsa_default_priv rsa_default_privexp rsa_default_pub rsa_default_pubexp \
        rsa_i15_keygen rsa_i15_modulus rsa_i15_oaep_decrypt rsa_i15_oaep_encrypt \
        rsa_i15_pkcs1_sign rsa_i15_pkcs1_vrfy rsa_i15_priv rsa_i15_privexp rsa_i15_pub \
        rsa_i15_pubexp rsa_i31_keygen rsa_i31_keygen_inner rsa_i31_modulus \
        rsa_i31_oaep_decrypt rsa_i31_oaep_encrypt rsa_i31_pkcs1_sign rsa_i31_pkcs1_vrfy \
        rsa_i31_priv rsa_i31_privexp rsa_i31_pub rsa_i31_pubexp rsa_i32_oaep_decrypt \
        rsa_i32_oaep_encrypt rsa_i32_pkcs1_sign rsa_i32_pkcs1_vrfy rsa_i32_priv rsa_i32_pub \
        rsa_i62_keygen rsa_i62_oaep_decrypt rsa_i62_oaep_encrypt rsa_i62_pkcs1_sign \
        rsa_i62_pkcs1_vrfy rsa_i62_priv rsa_i62_pub rsa_oaep_pad rsa_oaep_unpad \
        rsa_pkcs1_sig_pad rsa_pkcs1_sig_unpad rsa_ssl_decrypt) \
    settings \
    $(addprefix ssl/,prf prf_md5sha1 prf_sha256 prf_sha384 ssl_ccert_single_ec \
        ssl_ccert_single_rsa ssl_client ssl_client_default_rsapub ssl_client_full ssl_engine \
        ssl_engine_default_aescbc ssl_engine_default_aesccm ssl_engine_default_aesgcm \
        ssl_engine_default_chapol ssl_engine_default_descbc ssl_engine_default_ec \
        ssl_engine_default_ecdsa ssl_engine_default_rsavrfy ssl_hashes ssl_hs_client \
        ssl_hs_server ssl_io ssl_keyexport ssl_lru ssl_rec_cbc ssl_rec_ccm ssl_rec_chapol \
        ssl_rec_gcm ssl_scert_single_ec ssl_scert_single_rsa ssl_server ssl_server_full_ec \
        ssl_server_full_rsa ssl_server_mine2c ssl_server_mine2g ssl_server_minf2c \
        ssl_server_minf2g ssl_server_minr2g ssl_server_minu2g ssl_server_minv2g) \
    $(addprefix symcipher/,aes_big_cbcdec aes_big_cbcenc aes_big_ctr aes_big_ctrcbc \
        aes_big_dec aes_big_enc aes_common aes_ct aes_ct64 aes_ct64_cbcdec aes_ct64_cbcenc \
        aes_ct64_ctr aes_ct64_ctrcbc aes_ct64_dec aes_ct64_enc aes_ct_cbcdec aes_ct_cbcenc \
        aes_ct_ctr aes_ct_ctrcbc aes_ct_dec aes_ct_enc aes_pwr8 aes_pwr8_cbcdec \
        aes_pwr8_cbcenc aes_pwr8_ctr aes_pwr8_ctrcbc aes_small_cbcdec aes_small_cbcenc \
        aes_small_ctr aes_small_ctrcbc aes_small_dec aes_small_enc aes_x86ni \
        aes_x86ni_cbcdec aes_x86ni_cbcenc aes_x86ni_ctr aes_x86ni_ctrcbc chacha20_ct \
        chacha20_sse2 des_ct des_ct_cbcdec des_ct_cbcenc des_support des_tab des_tab_cbcdec \
        des_tab_cbcenc poly1305_ctmul poly1305_ctmul32 poly1305_ctmulq poly1305_i15) \
    $(addprefix x509/,asn1enc encode_ec_pk8der encode_ec_rawder encode_rsa_pk8der \
        encode_rsa_rawder skey_decoder x509_decoder x509_knownkey x509_minimal \
        x509_minimal_full)

# --- flags ---

# BearSSL: no /dev/urandom, no time() and no RDRAND seeder (inner.h would
# turn the first two on because gcc defines __linux__ even freestanding).
BEARSSL_DEFS := -DBR_USE_URANDOM=0 -DBR_USE_UNIX_TIME=0 -DBR_RDRAND=0
# zstd's xxhash symbols get the ZSTD_ prefix, as in zstd's own build.
ZSTD_DEFS := -DXXH_NAMESPACE=ZSTD_

DEPS_CFLAGS_efi := $(EFI_ARCH_CFLAGS) -nostdinc -isystem libc-mini/include -isystem $(GCC_INC) \
        $(DEPS_DEFS)
DEPS_CFLAGS_host := -O2 -fPIC $(DEPS_DEFS)
DEPS_LIBCFLAGS_zlib := -I$(ZLIB_DIR)
DEPS_LIBCFLAGS_zstd := $(ZSTD_DEFS) -I$(ZSTD_DIR) -I$(ZSTD_DIR)/common
DEPS_LIBCFLAGS_bearssl := $(BEARSSL_DEFS) -I$(BEARSSL_DIR)/inc -I$(BEARSSL_DIR)/src
DEPS_LIBCFLAGS_libdeflate := -I$(LIBDEFLATE_DIR)

# libdeflate in firmware: with FREESTANDING its memcpy/memset calls become
# __builtin_* (plain calls are not inlined under -ffreestanding, and its
# unaligned loads are memcpy). utils.c is left without it: there
# FREESTANDING would make the default allocator NULL and add weak copies of
# the mem* functions; built normally it takes malloc/free from libc-mini's
# stdlib.h (the EFI front end defines them) and nothing else.
$(patsubst %,$(DEPS_DIR)/efi/obj/libdeflate/%.o,$(filter-out lib/utils,$(LIBDEFLATE_NAMES))): \
        DEPS_LIBCFLAGS_libdeflate += -DFREESTANDING

# Source directory of each library's objects.
DEPS_SRCDIR_zlib := $(ZLIB_DIR)
DEPS_SRCDIR_zstd := $(ZSTD_DIR)
DEPS_SRCDIR_bearssl := $(BEARSSL_DIR)/src
DEPS_SRCDIR_libdeflate := $(LIBDEFLATE_DIR)

# Firmware objects also depend on libc-mini's headers.
DEPS_EXTRA_PREREQS_efi := $(LIBC_MINI_HDRS)
DEPS_EXTRA_PREREQS_host :=

ifeq ($(V),1)
DEPS_Q :=
DEPS_SAY = @:
else
DEPS_Q := @
DEPS_SAY = @printf '  %-4s %s\n'
endif

# --- objects and archives ---

DEPS_OBJS_zlib_efi := $(ZLIB_NAMES:%=$(DEPS_DIR)/efi/obj/zlib/%.o)
DEPS_OBJS_zstd_efi := $(ZSTD_NAMES:%=$(DEPS_DIR)/efi/obj/zstd/%.o) \
        $(DEPS_DIR)/efi/obj/zstd/decompress/huf_decompress_amd64.o
DEPS_OBJS_bearssl_efi := $(BEARSSL_NAMES:%=$(DEPS_DIR)/efi/obj/bearssl/%.o)
DEPS_OBJS_libdeflate_efi := $(LIBDEFLATE_NAMES:%=$(DEPS_DIR)/efi/obj/libdeflate/%.o)
DEPS_OBJS_zlib_host := $(ZLIB_NAMES:%=$(DEPS_DIR)/host/obj/zlib/%.o)
DEPS_OBJS_zstd_host := $(ZSTD_NAMES:%=$(DEPS_DIR)/host/obj/zstd/%.o) \
        $(DEPS_DIR)/host/obj/zstd/decompress/huf_decompress_amd64.o
DEPS_OBJS_bearssl_host := $(BEARSSL_NAMES:%=$(DEPS_DIR)/host/obj/bearssl/%.o)
DEPS_OBJS_libdeflate_host := $(LIBDEFLATE_NAMES:%=$(DEPS_DIR)/host/obj/libdeflate/%.o)

DEPS_EFI_LIBS := $(DEPS_DIR)/efi/libz.a $(DEPS_DIR)/efi/libzstd.a $(DEPS_DIR)/efi/libbearssl.a \
        $(DEPS_DIR)/efi/libdeflate.a
DEPS_HOST_LIBS := $(DEPS_DIR)/host/libz.a $(DEPS_DIR)/host/libzstd.a $(DEPS_DIR)/host/libbearssl.a \
        $(DEPS_DIR)/host/libdeflate.a

# Undefined symbols the firmware archives may have: libc-mini's string
# functions and the front end's allocator. Checked on every archive build.
DEPS_EFI_ALLOWED_SYMS := memcpy memmove memset memcmp strlen malloc calloc free

# Compile rule of one library in one flavour: $(1) = efi|host, $(2) = library.
# Objects depend on the fetch stamp rather than on the .c files, which do
# not exist before the first fetch and only ever change with it.
define DEPS_COMPILE_RULE
$(DEPS_DIR)/$(1)/obj/$(2)/%.o: $$(DEPS_FETCHED) $$(DEPS_EXTRA_PREREQS_$(1)) | $$(DEPS_STAMP)
	@mkdir -p $$(@D)
	$$(DEPS_SAY) CC "$$@"
	$$(DEPS_Q)$$(CC) $$(DEPS_CFLAGS_$(1)) $$(DEPS_LIBCFLAGS_$(2)) -c $$(DEPS_SRCDIR_$(2))/$$*.c -o $$@
endef
$(foreach f,efi host,$(foreach l,zlib zstd bearssl libdeflate,$(eval $(call DEPS_COMPILE_RULE,$(f),$(l)))))

# zstd's Huffman decoding loop in assembly (BMI2, chosen at run time by
# cpuid): the C loop is the bulk of a zstd cluster's decoding time. The code
# is position independent and calls nothing, so firmware takes it as well.
define DEPS_ZSTD_ASM_RULE
$(DEPS_DIR)/$(1)/obj/zstd/decompress/huf_decompress_amd64.o: $$(DEPS_FETCHED) | $$(DEPS_STAMP)
	@mkdir -p $$(@D)
	$$(DEPS_SAY) AS "$$@"
	$$(DEPS_Q)$$(CC) $$(DEPS_CFLAGS_$(1)) $$(DEPS_LIBCFLAGS_zstd) -c $$(ZSTD_DIR)/decompress/huf_decompress_amd64.S -o $$@
endef
$(foreach f,efi host,$(eval $(call DEPS_ZSTD_ASM_RULE,$(f))))

# $(1) = flavour, $(2) = library, $(3) = archive name
define DEPS_ARCHIVE_RULE
$(DEPS_DIR)/$(1)/$(3): $$(DEPS_OBJS_$(2)_$(1)) $(if $(filter efi,$(1)),$$(CHECK_SYMBOLS)) | $$(DEPS_STAMP)
	$$(DEPS_SAY) AR "$$@"
	$$(DEPS_Q)rm -f $$@.tmp && $$(AR) rcsD $$@.tmp $$(DEPS_OBJS_$(2)_$(1))
	$(if $(filter efi,$(1)),$$(DEPS_Q)bash $$(CHECK_SYMBOLS) --allow "$$(DEPS_EFI_ALLOWED_SYMS)" $$@.tmp)
	$$(DEPS_Q)mv -f $$@.tmp $$@
endef
$(foreach f,efi host,$(eval $(call DEPS_ARCHIVE_RULE,$(f),zlib,libz.a)))
$(foreach f,efi host,$(eval $(call DEPS_ARCHIVE_RULE,$(f),zstd,libzstd.a)))
$(foreach f,efi host,$(eval $(call DEPS_ARCHIVE_RULE,$(f),bearssl,libbearssl.a)))
$(foreach f,efi host,$(eval $(call DEPS_ARCHIVE_RULE,$(f),libdeflate,libdeflate.a)))

# --- fetching ---

$(DEPS_FETCHED): tools/fetch-sources.sh tools/sources.sha256 | $(DEPS_STAMP)
	bash tools/fetch-sources.sh
	@listed=$$(printf '%s\n' $(BEARSSL_NAMES) | LC_ALL=C sort); \
	 actual=$$(cd $(BEARSSL_DIR)/src && find . -name '*.c' | sed 's|^\./||; s|\.c$$||' | LC_ALL=C sort); \
	 if [ "$$listed" != "$$actual" ]; then \
	     echo "mk/deps.mk: BEARSSL_NAMES does not match $(BEARSSL_DIR)/src:" >&2; \
	     diff <(echo "$$listed") <(echo "$$actual") >&2; exit 1; \
	 fi
	@touch $@

deps: $(DEPS_EFI_LIBS) $(DEPS_HOST_LIBS)

.PHONY: deps

# --- libc-mini host test ---
# string.c is compiled again with its functions renamed (memcpy ->
# mini_memcpy, ...) and the same freestanding header set, then tested
# against the C library under AddressSanitizer and UBSan.

LIBC_MINI_TEST_BIN := build/tests/libc_mini_test
LIBC_MINI_FUNCS := memcpy memmove memset memcmp strlen strcmp strncmp strchr strrchr
LIBC_MINI_RENAME := $(foreach f,$(LIBC_MINI_FUNCS),-D$(f)=mini_$(f))
LIBC_MINI_TEST_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

build/tests/libc_mini/string.o: libc-mini/src/string.c $(LIBC_MINI_HDRS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -ffreestanding -O2 -g $(WARN) -nostdinc -isystem libc-mini/include -isystem $(GCC_INC) \
	    $(LIBC_MINI_RENAME) $(LIBC_MINI_TEST_SAN) -c $< -o $@

$(LIBC_MINI_TEST_BIN): tests/unit/libc_mini_test.c build/tests/libc_mini/string.o | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -O1 -g $(WARN) $(LIBC_MINI_TEST_SAN) $^ -o $@
