/* xsnap: a volume's bytes in a row of segment files.
 *
 * A file system limits the size of one file (ext4: 16 TiB less a block;
 * RLIMIT_FSIZE may set a lower limit), and a volume may be larger (64 TiB,
 * XS_VOLUME_SIZE_MAX).  So a head keeps its data in segments: files of
 * SEGMENT_SIZE bytes each, the last one shorter, byte B of the volume at
 * offset B % SEGMENT_SIZE of segment B / SEGMENT_SIZE.  Segment 0 is the
 * file PATH itself (`data`: a head made before segments existed is a head
 * of one segment, unchanged) and segment I > 0 is PATH.I, beside it.
 * docs/FORMAT.md describes the layout.
 *
 * The segment size of a head is not recorded: while a head has one
 * segment it is the larger of the size its opener asks for new segments
 * (XS_SEGFILE_SEGMENT_SIZE) and that segment's length (a head made
 * before segments, longer than that, keeps its length as its segment
 * size); a head of several segments has segments of its first one's
 * length.  Growing a head of one segment first fills that segment up to
 * the segment size, so what a reopen finds is always what was used.
 *
 * The I/O functions behave like the system calls they stand for, and
 * split a request that crosses a segment boundary into one call for each
 * segment: they return 0 (or an offset), or -1 with errno set, not
 * reported, as xs_full_pread does (the head reports what the request
 * was).  They may run in parallel with each other.  Creating, opening,
 * growing and cutting report their errors, and grow and cut need no I/O
 * in flight.
 */
#ifndef XSNAP_SEGFILE_H
#define XSNAP_SEGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The segment size of new segments: 1 TiB fits every file system xsnap
 * runs on (ext4 with 1 KiB blocks stops at 4 TiB, with 4 KiB blocks at
 * 16 TiB), and a volume of XS_VOLUME_SIZE_MAX needs 64 of them (64 file
 * descriptors while it is open).
 */
#define XS_SEGFILE_SEGMENT_SIZE (UINT64_C (1) << 40)

/* The most segments a head may have: a layout that needs more (a head of
 * tiny segments, a damaged one) is refused rather than opened with
 * thousands of descriptors.
 */
#define XS_SEGFILE_MAX_SEGMENTS 1024u

struct xs_segfile;

/* Make the segments for SIZE bytes at PATH, all holes and durable (the
 * caller syncs the directory); PATH must not exist.  SEGMENT_SIZE is
 * XS_SEGFILE_SEGMENT_SIZE but in tests.  0, or -1 (reported; nothing is
 * left behind).
 */
extern int xs_segfile_create (const char *path, uint64_t size,
                              uint64_t segment_size);

/* Drop everything the segments at PATH hold and lay them out again for
 * SIZE bytes, all holes, in segments of SEGMENT_SIZE (a reset).  0, or
 * -1 (reported; the segments may then hold less than SIZE, never data).
 */
extern int xs_segfile_recreate (const char *path, uint64_t size,
                                uint64_t segment_size);

/* Open the segments at PATH: segment 0 and every PATH.I after it up to
 * the first missing one.  SEGMENT_SIZE is the size of the segments a head
 * of one segment grows by (above).  LABEL names the data in messages
 * ("volume 'v'").  NULL if they cannot be opened, or do not make a layout
 * (a segment that is not the last one shorter or longer than the first;
 * more than XS_SEGFILE_MAX_SEGMENTS), reported.
 */
extern struct xs_segfile *xs_segfile_open (const char *path,
                                           uint64_t segment_size,
                                           const char *label);

/* Unnamed segments (O_TMPFILE) in DIR, SIZE bytes of holes in segments
 * of SEGMENT_SIZE: scratch space laid out like a volume's data, gone
 * when closed.  NULL with errno set if they cannot be made (a file system
 * without unnamed files, a full disk): not reported, but for a lack of
 * memory, because the caller does without them.
 */
extern struct xs_segfile *xs_segfile_open_unnamed (const char *dir,
                                                   uint64_t size,
                                                   uint64_t segment_size,
                                                   const char *label);

/* Close every segment.  Nothing is synced. */
extern void xs_segfile_close (struct xs_segfile *sf);

/* The bytes the segments hold, their size and how many there are. */
extern uint64_t xs_segfile_size (const struct xs_segfile *sf);
extern uint64_t xs_segfile_segment_size (const struct xs_segfile *sf);
extern unsigned xs_segfile_count (const struct xs_segfile *sf);

/* ----- I/O, within [0, size): -1 with errno (EINVAL past the end) ----- */

/* Read all of [OFFSET, OFFSET + COUNT) (EIO at an unexpected end). */
extern int xs_segfile_pread (struct xs_segfile *sf, void *buf, size_t count,
                             uint64_t offset);

/* Write all of BUF at OFFSET with pwritev2 FLAGS (RWF_DSYNC for FUA:
 * each segment's part is durable when this returns).
 */
extern int xs_segfile_pwrite (struct xs_segfile *sf, const void *buf,
                              size_t count, uint64_t offset, int flags);

/* fallocate(2) MODE over [OFFSET, OFFSET + LEN) (FALLOC_FL_PUNCH_HOLE,
 * FALLOC_FL_ZERO_RANGE, with FALLOC_FL_KEEP_SIZE).
 */
extern int xs_segfile_fallocate (struct xs_segfile *sf, int mode,
                                 uint64_t offset, uint64_t len);

/* lseek(2) with WHENCE SEEK_DATA or SEEK_HOLE over the whole: the first
 * data (hole) at or after OFFSET.  The size is the start of the hole at
 * the end; -1 with ENXIO for OFFSET at or past it, and for SEEK_DATA when
 * only holes follow.  A segment boundary is neither.
 */
extern off_t xs_segfile_seek (struct xs_segfile *sf, uint64_t offset,
                              int whence);

/* Whether [OFFSET, OFFSET + LEN) is all holes (a failure to tell is
 * taken as data: the caller reads it).
 */
extern bool xs_segfile_is_hole (struct xs_segfile *sf, uint64_t offset,
                                uint64_t len);

/* fdatasync every segment written (pwrite, fallocate) since it was last
 * synced or opened.  On a failure the others are still synced, and the
 * failed one is synced again next time.
 */
extern int xs_segfile_sync (struct xs_segfile *sf);

/* Copy [OFFSET, OFFSET + LEN) of FROM to the same offsets of TO
 * (copy_file_range(2); both on one file system to be cheap).
 */
extern int xs_segfile_copy (struct xs_segfile *from, struct xs_segfile *to,
                            uint64_t offset, uint64_t len);

/* sync_file_range(2) with FLAGS over [OFFSET, OFFSET + COUNT), then with
 * DROP posix_fadvise(2) POSIX_FADV_DONTNEED.  Hints: errors are ignored
 * (the next sync reports them).
 */
extern void xs_segfile_writeback (struct xs_segfile *sf, uint64_t offset,
                                  uint64_t count, unsigned flags, bool drop);

/* ----- Growing and giving back ----- */

/* Grow to NEW_SIZE bytes, all or nothing: the last segment is extended,
 * then the new segments are made, each synced, then the directory.  On
 * any failure what was made is removed and the last segment gets its old
 * length back, and -1 is returned (reported).
 */
extern int xs_segfile_grow (struct xs_segfile *sf, uint64_t new_size);

/* Give back what grows added past SIZE: the segments after the one that
 * holds byte SIZE - 1 are removed (the last first) and that one is cut to
 * its length.  Refused, changing nothing, if any byte past SIZE holds
 * data: what was written is never cut away.  0, or -1 (reported).
 */
extern int xs_segfile_cut (struct xs_segfile *sf, uint64_t size);

#endif /* XSNAP_SEGFILE_H */
