#include "cli/cli.h"

int img_io_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("img io: not built yet");
}
