// Lets a test driver built without the emulator's macros (skinny-lora-test.cu) switch cuda-emu.h's gridTogether mode:
// every block of a launch at once, round robin (the shrink inside the skinny GEMM's launch spins across blocks).
#include "cuda-emu.h"

void emuSetGridTogether(bool on) { emu::gridTogether() = on; }
// At most `blocks` blocks started at once (0: all), as a GPU's wave.
void emuSetGridResident(int blocks) { emu::gridResidentBlocks() = blocks; }
