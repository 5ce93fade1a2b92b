#include "cli/cli.h"

int img_check_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("img check: not built yet");
}
