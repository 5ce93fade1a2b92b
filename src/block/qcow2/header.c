#include "block/qcow2/qcow2.h"
const struct bdev_driver bdev_qcow2_driver = {.name = "qcow2"};
