/* e1000e: a host driver (plain pci: alias) */
static const char modinfo[] __attribute__((used, section(".modinfo"), aligned(1))) =
    "alias=pci:v00008086d000010D3sv*sd*bc*sc*i*\0license=GPL v2\0name=e1000e\0";
