/*
 * Checks the Block I/O of a disk that `qcowboot.efi mount` published: the
 * first handle whose device path ends in qcowboot's vendor node. One line
 * per check, for tests/firmware/disk.sh:
 *
 *   probe: tpl start <TPL>
 *   probe: disk <device path>
 *   probe: media <field>=<value> ...
 *   probe: ok <check>   |   probe: FAIL <check>: <what happened>
 *   probe: crc32 <CRC32 of the whole disk> <bytes>
 *
 * What it checks depends on its argument:
 *   (none)      a read-only disk: errors for bad requests, writes refused,
 *               the whole disk read at once and in pieces alike
 *   write LBA   a writable disk: bad requests refused, then patterns
 *               written at LBA (see pattern()) and read back: three blocks
 *               from an odd buffer address, one block over the middle one,
 *               and 256 KiB at LBA + 64 across clusters; a flush
 *   fill        a volatile disk: 1 MiB writes from block 0 on until one
 *               fails, which must be EFI_VOLUME_FULL; what was written
 *               still reads back, and rewriting it still works
 */
#include <efi.h>
#include <efilib.h>

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab);

/* qcowboot's vendor node (efi/efi_disk.h: QB_EFI_DISK_VENDOR_GUID). */
static EFI_GUID vendor = { 0x222f59ab, 0x487e, 0x4ff9,
                           { 0xa0, 0xe5, 0xe9, 0x4c, 0x10, 0x62, 0xda, 0x94 } };

static int failures;

static void expect(const CHAR16 *name, EFI_STATUS got, EFI_STATUS want)
{
    if (got == want) {
        Print(L"probe: ok %s\n", name);
    } else {
        Print(L"probe: FAIL %s: got %r, expected %r\n", name, got, want);
        failures++;
    }
}

static void check(const CHAR16 *name, BOOLEAN ok, const CHAR16 *what)
{
    if (ok) {
        Print(L"probe: ok %s\n", name);
    } else {
        Print(L"probe: FAIL %s: %s\n", name, what);
        failures++;
    }
}

/* The TPL we run at: the shell starts programs at TPL_APPLICATION, and
 * nothing the disk did before may have left it higher. */
static void print_tpl(const CHAR16 *when)
{
    EFI_TPL t = uefi_call_wrapper(BS->RaiseTPL, 1, TPL_HIGH_LEVEL);

    uefi_call_wrapper(BS->RestoreTPL, 1, t);
    Print(L"probe: tpl %s %d\n", when, (UINTN)t);
}

/* Byte i of block `lba` written with pattern `tag`: tests/firmware/disk.sh
 * computes the same to find it in the image. */
static UINT8 pattern(UINT8 tag, EFI_LBA lba, UINTN i)
{
    return (UINT8)(tag ^ (lba * 29) ^ (i * 13) ^ (i >> 8));
}

static void fill_pattern(UINT8 *buf, UINT8 tag, EFI_LBA lba, UINTN blocks, UINT32 bs)
{
    for (UINTN b = 0; b < blocks; b++)
        for (UINTN i = 0; i < bs; i++)
            buf[b * bs + i] = pattern(tag, lba + b, i);
}

static BOOLEAN same(const UINT8 *a, const UINT8 *b, UINTN n)
{
    return CompareMem(a, b, n) == 0;
}

/* Writes `blocks` blocks of pattern `tag` at lba and reads them back. */
static EFI_STATUS write_back(EFI_BLOCK_IO *bio, UINT8 *buf, UINT8 *back, UINT8 tag, EFI_LBA lba,
                             UINTN blocks)
{
    UINT32 bs = bio->Media->BlockSize;
    EFI_STATUS st;

    fill_pattern(buf, tag, lba, blocks, bs);
    st = uefi_call_wrapper(bio->WriteBlocks, 5, bio, bio->Media->MediaId, lba, blocks * bs, buf);
    if (st != EFI_SUCCESS)
        return st;
    st = uefi_call_wrapper(bio->ReadBlocks, 5, bio, bio->Media->MediaId, lba, blocks * bs, back);
    if (st != EFI_SUCCESS)
        return st;
    return same(buf, back, blocks * bs) ? EFI_SUCCESS : EFI_CRC_ERROR;
}

static int probe_write(EFI_BLOCK_IO *bio, EFI_LBA lba)
{
    EFI_BLOCK_IO_MEDIA *m = bio->Media;
    UINT32 bs = m->BlockSize;
    UINTN big = 256 * 1024;
    UINT8 *raw = AllocatePool(big + 1), *buf = raw + 1, *back = AllocatePool(big);
    UINT8 *want = AllocatePool(3 * bs);

    if (!raw || !back || !want) {
        Print(L"probe: FAIL memory\n");
        return 1;
    }
    check(L"writable", !m->ReadOnly, L"the media is read-only");
    expect(L"write-stale-mediaid", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId + 1,
                                                     lba, bs, buf), EFI_MEDIA_CHANGED);
    expect(L"write-size-not-multiple", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId,
                                                         lba, bs + 1, buf), EFI_BAD_BUFFER_SIZE);
    expect(L"write-past-end", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId,
                                                m->LastBlock, 2 * bs, buf),
           EFI_INVALID_PARAMETER);
    expect(L"write-null-buffer", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId, lba,
                                                   bs, NULL), EFI_INVALID_PARAMETER);
    expect(L"write-zero-length", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId, lba,
                                                   0, buf), EFI_SUCCESS);
    /* Three blocks from an odd address, then one over the middle one. */
    expect(L"write-three-blocks", write_back(bio, buf, back, 0xa5, lba, 3), EFI_SUCCESS);
    fill_pattern(want, 0xa5, lba, 3, bs);
    expect(L"write-middle-block", write_back(bio, buf, back, 0x3c, lba + 1, 1), EFI_SUCCESS);
    fill_pattern(want + bs, 0x3c, lba + 1, 1, bs);
    expect(L"read-merged", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, lba, 3 * bs,
                                             back), EFI_SUCCESS);
    check(L"merged-content", same(want, back, 3 * bs), L"not what was written");
    expect(L"write-256k", write_back(bio, buf, back, 0x77, lba + 64, big / bs), EFI_SUCCESS);
    expect(L"flush", uefi_call_wrapper(bio->FlushBlocks, 1, bio), EFI_SUCCESS);
    return 0;
}

/* A volatile disk: writes until its memory is used up. */
static int probe_fill(EFI_BLOCK_IO *bio)
{
    EFI_BLOCK_IO_MEDIA *m = bio->Media;
    UINT32 bs = m->BlockSize;
    UINTN chunk = 1024 * 1024, blocks = chunk / bs;
    UINT8 *buf = AllocatePool(chunk), *back = AllocatePool(chunk);
    EFI_STATUS st = EFI_SUCCESS;
    EFI_LBA lba;

    if (!buf || !back) {
        Print(L"probe: FAIL memory\n");
        return 1;
    }
    fill_pattern(buf, 0x42, 0, blocks, bs);
    for (lba = 0; lba + blocks <= m->LastBlock + 1; lba += blocks) {
        st = uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId, lba, chunk, buf);
        if (st != EFI_SUCCESS)
            break;
    }
    Print(L"probe: fill stopped after %ld MiB: %r\n", (UINT64)(lba / blocks), st);
    expect(L"fill-volume-full", st, EFI_VOLUME_FULL);
    /* The refused write changed nothing; what came before is all there. */
    expect(L"fill-read-first", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, 0, chunk,
                                                 back), EFI_SUCCESS);
    check(L"fill-first-intact", same(buf, back, chunk), L"not what was written");
    if (lba >= blocks) {
        expect(L"fill-read-last", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId,
                                                    lba - blocks, chunk, back), EFI_SUCCESS);
        check(L"fill-last-intact", same(buf, back, chunk), L"not what was written");
    }
    expect(L"fill-refused-unchanged", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId,
                                                        lba, bs, back), EFI_SUCCESS);
    check(L"fill-refused-zero", back[0] == 0 && back[bs - 1] == 0, L"the refused write landed");
    /* Blocks held already need no more memory. */
    expect(L"fill-rewrite", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId, 0, chunk,
                                              buf), EFI_SUCCESS);
    return 0;
}

/* The disk itself: our vendor node is its last node (partitions add a
 * hard-drive node after it). */
static BOOLEAN is_our_disk(EFI_DEVICE_PATH *dp)
{
    EFI_DEVICE_PATH *last = NULL;

    for (; dp && !IsDevicePathEnd(dp); dp = NextDevicePathNode(dp))
        last = dp;
    return last && DevicePathType(last) == MESSAGING_DEVICE_PATH &&
           DevicePathSubType(last) == MSG_VENDOR_DP &&
           CompareGuid(&((VENDOR_DEVICE_PATH *)last)->Guid, &vendor) == 0;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
    EFI_HANDLE *handles = NULL;
    UINTN n = 0, i;
    EFI_BLOCK_IO *bio = NULL;
    EFI_BLOCK_IO_MEDIA *m;
    UINT8 *whole, *chunked, *raw;
    UINTN size, chunk = 64 * 1024;
    UINT32 crc_whole = 0, crc_chunked = 0;
    EFI_STATUS st;
    CHAR16 **argv = NULL;
    INTN argc;

    InitializeLib(image, systab);
    print_tpl(L"start");
    argc = GetShellArgcArgv(image, &argv);
    uefi_call_wrapper(BS->LocateHandleBuffer, 5, ByProtocol, &BlockIoProtocol, NULL, &n, &handles);
    for (i = 0; i < n; i++) {
        EFI_DEVICE_PATH *dp = DevicePathFromHandle(handles[i]);
        if (is_our_disk(dp)) {
            Print(L"probe: disk %s\n", DevicePathToStr(dp));
            uefi_call_wrapper(BS->HandleProtocol, 3, handles[i], &BlockIoProtocol, (void **)&bio);
            break;
        }
    }
    if (!bio) {
        Print(L"probe: FAIL find: no qcowboot disk\n");
        return EFI_NOT_FOUND;
    }
    m = bio->Media;
    Print(L"probe: media revision=%lx blocksize=%d lastblock=%ld removable=%d present=%d "
          L"readonly=%d logicalpartition=%d ioalign=%d lowestaligned=%ld "
          L"blocksperphysical=%d transfergranularity=%d\n",
          bio->Revision, m->BlockSize, m->LastBlock, m->RemovableMedia, m->MediaPresent,
          m->ReadOnly, m->LogicalPartition, m->IoAlign, m->LowestAlignedLba,
          m->LogicalBlocksPerPhysicalBlock, m->OptimalTransferLengthGranularity);

    if (argc >= 3 && StrCmp(argv[1], L"write") == 0) {
        probe_write(bio, Atoi(argv[2]));
        Print(L"probe: done, %d failed\n", failures);
        return failures ? EFI_ABORTED : EFI_SUCCESS;
    }
    if (argc >= 2 && StrCmp(argv[1], L"fill") == 0) {
        probe_fill(bio);
        Print(L"probe: done, %d failed\n", failures);
        return failures ? EFI_ABORTED : EFI_SUCCESS;
    }

    size = (UINTN)(m->LastBlock + 1) * m->BlockSize;
    whole = AllocatePool(size);
    raw = AllocatePool(size + 1);
    if (!whole || !raw) {
        Print(L"probe: FAIL memory: disk too large\n");
        return EFI_OUT_OF_RESOURCES;
    }
    /* An odd address: IoAlign allows any buffer. */
    chunked = raw + 1;

    expect(L"stale-mediaid", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId + 1, 0,
                                               m->BlockSize, whole), EFI_MEDIA_CHANGED);
    expect(L"size-not-multiple", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, 0,
                                                   m->BlockSize + 100, whole),
           EFI_BAD_BUFFER_SIZE);
    expect(L"lba-past-end", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId,
                                              m->LastBlock + 1, m->BlockSize, whole),
           EFI_INVALID_PARAMETER);
    expect(L"range-past-end", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId,
                                                m->LastBlock, 2 * m->BlockSize, whole),
           EFI_INVALID_PARAMETER);
    expect(L"huge-lba", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId,
                                          (EFI_LBA)-1, m->BlockSize, whole),
           EFI_INVALID_PARAMETER);
    expect(L"null-buffer", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, 0,
                                             m->BlockSize, NULL), EFI_INVALID_PARAMETER);
    expect(L"zero-length", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, 0, 0, whole),
           EFI_SUCCESS);
    expect(L"last-block", uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, m->LastBlock,
                                            m->BlockSize, whole), EFI_SUCCESS);
    expect(L"write-protected", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId, 0,
                                                 m->BlockSize, whole), EFI_WRITE_PROTECTED);
    expect(L"write-stale-mediaid", uefi_call_wrapper(bio->WriteBlocks, 5, bio, m->MediaId + 1, 0,
                                                     m->BlockSize, whole), EFI_MEDIA_CHANGED);
    expect(L"flush", uefi_call_wrapper(bio->FlushBlocks, 1, bio), EFI_SUCCESS);
    expect(L"reset", uefi_call_wrapper(bio->Reset, 2, bio, FALSE), EFI_SUCCESS);

    /* The whole disk in one request, and again in 64 KiB requests into a
     * misaligned buffer: the same bytes. */
    st = uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, 0, size, whole);
    expect(L"read-whole-disk", st, EFI_SUCCESS);
    for (i = 0; i < size && st == EFI_SUCCESS; i += chunk) {
        UINTN len = size - i < chunk ? size - i : chunk;
        st = uefi_call_wrapper(bio->ReadBlocks, 5, bio, m->MediaId, i / m->BlockSize, len,
                               chunked + i);
    }
    expect(L"read-in-chunks", st, EFI_SUCCESS);
    uefi_call_wrapper(BS->CalculateCrc32, 3, whole, size, &crc_whole);
    uefi_call_wrapper(BS->CalculateCrc32, 3, chunked, size, &crc_chunked);
    check(L"chunks-match-whole", crc_whole == crc_chunked, L"different data");
    Print(L"probe: crc32 %08x %ld\n", crc_whole, (UINT64)size);
    Print(L"probe: done, %d failed\n", failures);
    return failures ? EFI_ABORTED : EFI_SUCCESS;
}
