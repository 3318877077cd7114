/* vfio_pci: PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_ANY_ID, PCI_ANY_ID) */
static const char modinfo[] __attribute__((used, section(".modinfo"), aligned(1))) =
    "alias=vfio_pci:v*d*sv*sd*bc*sc*i*\0license=GPL v2\0name=vfio_pci\0";
