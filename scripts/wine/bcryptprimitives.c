/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the Windows build's tests under
 * Wine releases that lack it (Debian 12's Wine 8.0). Rust's standard library takes its
 * randomness from ProcessPrng in this DLL; without it every Windows program Rust builds fails
 * to start. This one draws from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
