#include <stdio.h>
#include "lorac.h"
int main(void) { printf("lorac %s\n", LORAC_VERSION); return 0; }
