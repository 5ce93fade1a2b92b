#include "cli/cli.h"

int img_create_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("img create: not built yet");
}
