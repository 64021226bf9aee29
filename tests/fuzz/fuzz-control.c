/* libFuzzer target: the control-socket request parser (requests come
 * from any local process that can reach the owner's socket).
 */
#include <stddef.h>
#include <stdint.h>

#include "head/control.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *problem = NULL;
  json_t *request;

  request = xs_control_parse_request ((const char *) data, size, &problem);
  if (request) {
    /* What parses is an object with an integer version and a string op. */
    if (!json_is_object (request)
        || !json_is_string (json_object_get (request, "op")))
      __builtin_trap ();
    json_decref (request);
  }
  else if (problem == NULL)
    __builtin_trap ();
  return 0;
}
