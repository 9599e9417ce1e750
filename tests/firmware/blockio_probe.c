/*
 * Checks the Block I/O of a disk that `qcowboot.efi mount` published: the
 * first handle whose device path ends in qcowboot's vendor node. One line
 * per check, for tests/firmware/disk.sh:
 *
 *   probe: disk <device path>
 *   probe: media <field>=<value> ...
 *   probe: ok <check>   |   probe: FAIL <check>: <what happened>
 *   probe: crc32 <CRC32 of the whole disk> <bytes>
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

    InitializeLib(image, systab);
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
