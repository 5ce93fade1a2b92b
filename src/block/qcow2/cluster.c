#include "block/qcow2/qcow2.h"
