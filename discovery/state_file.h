/*
 * state_file (DESIGN §11): the last member set a source gave, saved so that a
 * restart while the source is down can route as before. The format is the
 * /ring members array inside an object:
 *   {"version":1,"source":"etcd","saved":1700000000,
 *    "members":[{"id":"ws-a","address":"127.0.0.1:9001","weight":1,"public_url":"..."}]}
 * Any source may use it: proxy/publisher.c writes and reads through here.
 */
#ifndef WSRING_DISCOVERY_STATE_FILE_H
#define WSRING_DISCOVERY_STATE_FILE_H

#include <stddef.h>

struct member_set;

/*
 * Writes SET (from SOURCE) to PATH atomically: a temporary file in the same
 * directory, fsync, rename over PATH, fsync of the directory. Returns 0, or
 * -1 with a message in ERR (PATH and the system's reason).
 */
int state_file_write(const char *path, const struct member_set *set, const char *source, char *err,
                     size_t err_len);
/*
 * Reads PATH. Returns a new member set (possibly empty), or NULL with a
 * message in ERR: unreadable, not JSON, not the format above, a member that
 * the ring would refuse (empty id, weight outside 1..1000, duplicate id).
 */
struct member_set *state_file_read(const char *path, char *err, size_t err_len);

#endif /* WSRING_DISCOVERY_STATE_FILE_H */
