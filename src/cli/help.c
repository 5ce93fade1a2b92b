/* `ligero help [GROUP] [VERB]`: print synopses from the manual pages (see help.h). */
#include "cli/cli.h"
#include "cli/help.h"

#include <stdio.h>
#include <string.h>

static bool is_group(const char *name)
{
	for (size_t i = 0; i < help_nsynopses; i++)
		if (!strcmp(help_synopses[i].group, name))
			return true;
	return false;
}

static const struct help_synopsis *find(const char *group, const char *verb)
{
	for (size_t i = 0; i < help_nsynopses; i++)
		if (!strcmp(help_synopses[i].group, group) && !strcmp(help_synopses[i].verb, verb))
			return &help_synopses[i];
	return NULL;
}

static int print_group(const char *group)
{
	for (size_t i = 0; i < help_nsynopses; i++)
		if (!strcmp(help_synopses[i].group, group))
			fputs(help_synopses[i].text, stdout);
	printf("\nSee 'man ligero-%s'.\n", group);
	return 0;
}

static int print_verb(const struct help_synopsis *s)
{
	fputs(s->text, stdout);
	printf("\nSee 'man ligero-%s' (%s), or 'ligero %s %s --help'.\n", s->group, s->verb,
	       s->group, s->verb);
	return 0;
}

/* `help VERB` without a group: the verb's group when exactly one group has it. */
static int help_verb_alone(const char *verb)
{
	const struct help_synopsis *hit = NULL;
	char groups[256] = "";
	int n = 0;

	for (size_t i = 0; i < help_nsynopses; i++) {
		const struct help_synopsis *s = &help_synopses[i];
		if (!*s->verb || strcmp(s->verb, verb))
			continue;
		hit = s;
		n++;
		snprintf(groups + strlen(groups), sizeof(groups) - strlen(groups), "%s%s",
			 n > 1 ? ", " : "", s->group);
	}
	if (n == 1)
		return print_verb(hit);
	if (n > 1)
		return cli_fail("help: '%s' is a verb of several groups (%s): say 'ligero help "
				"GROUP %s'",
				verb, groups, verb);
	return cli_fail("help: no command group or verb '%s' (see 'ligero --help')", verb);
}

int cmd_help(int argc, char **argv)
{
	const struct help_synopsis *s;

	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		puts("usage: ligero help [GROUP] [VERB]   (the synopsis from the manual page)");
		return 0;
	}
	if (argc > 3)
		return cli_fail(
		    "help: unexpected argument '%s' (usage: ligero help [GROUP] [VERB])", argv[3]);
	if (!is_group(argv[1]))
		return argc == 2
			   ? help_verb_alone(argv[1])
			   : cli_fail("help: no command group '%s' (see 'ligero --help')", argv[1]);
	if (argc == 2)
		return print_group(argv[1]);
	if (!(s = find(argv[1], argv[2])) || !*s->verb)
		return cli_fail("help: no verb '%s' in group '%s' (see 'ligero %s --help')",
				argv[2], argv[1], argv[1]);
	return print_verb(s);
}
