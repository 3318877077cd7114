/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <locale.h>

#include "cli.h"

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  return vfd_cli_main(argc, argv);
}
