#include "cli/cli.h"

int img_info_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("img info: not built yet");
}
