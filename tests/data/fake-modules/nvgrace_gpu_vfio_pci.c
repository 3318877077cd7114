/* nvgrace_gpu_vfio_pci: Grace Hopper GH100 (10de:2342) and GB200 (10de:2941) */
static const char modinfo[] __attribute__((used, section(".modinfo"), aligned(1))) =
    "alias=vfio_pci:v000010DEd00002342sv*sd*bc*sc*i*\0"
    "alias=vfio_pci:v000010DEd00002941sv*sd*bc*sc*i*\0"
    "license=GPL\0name=nvgrace_gpu_vfio_pci\0";
