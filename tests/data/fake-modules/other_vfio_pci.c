/* a second variant claiming 10de:2941 too: the choice is ambiguous */
static const char modinfo[] __attribute__((used, section(".modinfo"), aligned(1))) =
    "alias=vfio_pci:v000010DEd00002941sv*sd*bc*sc*i*\0license=GPL\0name=other_vfio_pci\0";
