"""A small kernel release the tests build for themselves, laid out like linux-1.0.

The unit tests need "some kernel-like files", not Linux 1.0 itself: a GPL COPYING at the top, a lib/ of short
syscall stubs (one longer than the tiny model's 128-token context, so sliding windows are exercised) and a long
malloc.c the tiny corpus leaves out, a kernel/ folder, a Makefile and a README, one Latin-1 file, and a pair of
paths where one is a prefix of the other (drivers/sound/Readme, Readme.linux). The text is written for these
tests in the style of the 1994 tree. `write_mirror` packs it as kernel.org lays a release out: `v1.0/` with
`linux-1.0.tar.xz`, `linux-1.0.tar.gz` and a `sha256sums.txt` that vouches for both. Archives are byte-stable
(fixed times, owners and order), so a tree's checksums only change when this file does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path

VERSION = "1.0"
TOP = "linux"
MTIME = 763_516_800  # 1994-03-13, the day Linux 1.0 was released

GPL_OPENING = """\
                    GNU GENERAL PUBLIC LICENSE
                       Version 2, June 1991

 Copyright (C) 1989, 1991 Free Software Foundation, Inc.
                          675 Mass Ave, Cambridge, MA 02139, USA
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The licenses for most software are designed to take away your
freedom to share and change it.  By contrast, the GNU General Public
License is intended to guarantee your freedom to share and change free
software--to make sure the software is free for all its users.
"""


def _stub(name: str, body: str) -> str:
    """A lib/ file as Linux 1.0 wrote them: a header comment, the unistd include, one syscall stub."""
    return (f"/*\n *  linux/lib/{name}\n *\n *  Copyright (C) 1991, 1992  Linus Torvalds\n */\n\n"
            f"#define __LIBRARY__\n#include <linux/unistd.h>\n\n{body}")


def _ctype() -> str:
    """A 257-entry class table, one row of eight per line: several contexts long, and line-addressable."""
    rows = []
    for start in range(0, 128, 8):
        kinds = ["_D" if 48 <= c <= 57 else "_U" if 65 <= c <= 90 else "_L" if 97 <= c <= 122
                 else "_C" if c < 32 or c == 127 else "_S|_SP" if c == 32 else "_P" for c in range(start, start + 8)]
        rows.append(",".join(kinds) + f",\t\t\t/* {start}-{start + 7} */")
    rows += [",".join(["0"] * 16) + f",\t\t/* {start}-{start + 15} */" for start in range(128, 256, 16)]
    rows[-1] = rows[-1].replace(",\t\t/*", "};\t\t/*")
    return ("/*\n *  linux/lib/ctype.c\n *\n *  Copyright (C) 1991, 1992  Linus Torvalds\n */\n\n"
            "#include <linux/ctype.h>\n\nchar _ctmp;\nunsigned char _ctype[] = {0x00,\t\t\t/* EOF */\n"
            + "\n".join(rows) + "\n")


def _malloc() -> str:
    """A long allocator: far past any small context, and excluded from the tiny corpus by name."""
    buckets = "\n".join(f"\t{{ {size:5d}, {4096 // size:4d}, 0, 0, 0, 0 }},\t/* bucket {n} */"
                        for n, size in enumerate(2 ** k for k in range(4, 13)))
    helpers = "\n".join(f"static inline int bucket_fits_{size}(unsigned int len)\n{{\n\treturn len <= {size};\n}}\n"
                        for size in (2 ** k for k in range(4, 13)))
    return ("/*\n * malloc.c --- a simple bucket allocator for the kernel\n *\n"
            " * Each bucket holds objects of one power-of-two size, carved from whole pages.\n */\n\n"
            "#include <linux/kernel.h>\n#include <linux/mm.h>\n\n"
            "struct bucket_desc {\n\tvoid\t*page;\n\tstruct bucket_desc\t*next;\n\tvoid\t*freeptr;\n"
            "\tunsigned short\trefcnt;\n\tunsigned short\tbucket_size;\n};\n\n"
            "struct _bucket_dir {\n\tint\tsize;\n\tint\tper_page;\n\tstruct bucket_desc *chain;\n\tint\tnfree;\n"
            "\tint\tnused;\n\tint\tpad;\n};\n\nstruct _bucket_dir bucket_dir[] = {\n" + buckets
            + "\n\t{ 0, 0, 0, 0, 0, 0 }};\n\n" + helpers
            + "\nvoid *kmalloc(unsigned int len, int priority)\n{\n\tstruct _bucket_dir *bdir;\n\n"
            "\tfor (bdir = bucket_dir; bdir->size; bdir++)\n\t\tif (bdir->size >= len)\n\t\t\tbreak;\n"
            "\tif (!bdir->size) {\n\t\tprintk(\"kmalloc of too large a block (%d bytes).\\n\", len);\n"
            "\t\treturn NULL;\n\t}\n\tbdir->nused++;\n\treturn get_free_page(priority);\n}\n\n"
            "void kfree_s(void *obj, int size)\n{\n\tfree_page((unsigned long) obj);\n}\n")


def _kernel(name: str, what: str, functions: tuple[str, ...]) -> str:
    bodies = "\n".join(f"asmlinkage int sys_{f}(void)\n{{\n\treturn -ENOSYS;\t/* {what}: {f} */\n}}\n"
                       for f in functions)
    return (f"/*\n *  linux/kernel/{name}\n *\n *  Copyright (C) 1991, 1992  Linus Torvalds\n *\n"
            f" *  {what}\n */\n\n#include <linux/sched.h>\n#include <linux/kernel.h>\n#include <linux/errno.h>\n\n"
            + bodies)


TCP_NOTICE = """\
/*
 * INET		An implementation of the TCP/IP protocol suite for the LINUX
 *		operating system.
 *
 *		This program is free software; you can redistribute it and/or
 *		modify it under the terms of the GNU General Public License
 *		as published by the Free Software Foundation; either version
 *		2 of the License, or(at your option) any later version.
 */

#include <linux/types.h>

int tcp_connect(void)
{
	return 0;
}
"""


def tree() -> dict[str, bytes]:
    """Every file of the release, path → bytes, in path order."""
    text = {
        "COPYING": GPL_OPENING,
        "Makefile": "VERSION = 1\nPATCHLEVEL = 0\nSUBLEVEL = 0\n\nall:\tVersion zImage\n\n"
                    "SUBDIRS\t= kernel lib fs net\n\nclean:\n\trm -f zImage System.map\n",
        "README": "\tLinux kernel release 1.0\n\nThese are the release notes for linux version 1.0.  Read them\n"
                  "carefully, as they tell you what this is all about.\n",
        "fs/open.c": "/*\n *  linux/fs/open.c\n */\n\n#include <linux/fs.h>\n\nasmlinkage int sys_open(const char "
                     "* filename, int flags, int mode)\n{\n\treturn do_open(filename, flags, mode);\n}\n",
        "include/linux/ctype.h": "#ifndef _LINUX_CTYPE_H\n#define _LINUX_CTYPE_H\n\n#define _U\t0x01\n"
                                 "#define _L\t0x02\n#define _D\t0x04\n#define _C\t0x08\n#define _P\t0x10\n"
                                 "#define _S\t0x20\n#define _X\t0x40\n#define _SP\t0x80\n\n"
                                 "extern unsigned char _ctype[];\n\n#endif\n",
        "include/linux/types.h": "#ifndef _LINUX_TYPES_H\n#define _LINUX_TYPES_H\n\ntypedef unsigned int size_t;\n"
                                 "typedef int pid_t;\ntypedef long off_t;\n\n#endif\n",
        "include/linux/unistd.h": "#ifndef _LINUX_UNISTD_H\n#define _LINUX_UNISTD_H\n\n#define __NR_exit\t1\n"
                                  "#define __NR_write\t4\n#define __NR_open\t5\n#define __NR_close\t6\n"
                                  "#define __NR_waitpid\t7\n#define __NR_execve\t11\n#define __NR_dup\t41\n"
                                  "#define __NR_setsid\t66\n\n#endif\n",
        "kernel/Makefile": "OBJS  = sched.o fork.o exit.o panic.o printk.o\n\nkernel.o: $(OBJS)\n"
                           "\t$(LD) -r -o kernel.o $(OBJS)\n",
        "kernel/exit.c": _kernel("exit.c", "process exit and wait", ("exit", "waitpid", "wait4")),
        "kernel/fork.c": _kernel("fork.c", "process creation", ("fork", "clone")),
        "kernel/panic.c": _kernel("panic.c", "the last words of a dying kernel", ("panic",)),
        "kernel/printk.c": _kernel("printk.c", "console and log buffer", ("syslog", "printk")),
        "kernel/sched.c": _kernel("sched.c", "the scheduler and its system calls",
                                  ("pause", "nice", "getpid", "getppid", "alarm", "sched_yield")),
        "lib/Makefile": "#\n# Makefile for some libs needed in the kernel.\n#\n\n.c.o:\n\t$(CC) $(CFLAGS) -c $<\n\n"
                        "OBJS  = ctype.o _exit.o open.o close.o errno.o write.o dup.o setsid.o \\\n"
                        "\texecve.o wait.o string.o\n\nlib.a: $(OBJS)\n\t$(AR) rcs lib.a $(OBJS)\n\tsync\n",
        "lib/_exit.c": _stub("_exit.c", "volatile void _exit(int exit_code)\n{\nfake_volatile:\n"
                             "\t__asm__(\"movl %1,%%ebx\\n\\t\"\n\t\t\"int $0x80\"\n"
                             "\t\t: /* no outputs */\n\t\t:\"a\" (__NR_exit),\"g\" (exit_code));\n"
                             "\tgoto fake_volatile;\n}\n"),
        "lib/close.c": _stub("close.c", "_syscall1(int,close,int,fd)\n"),
        "lib/ctype.c": _ctype(),
        "lib/dup.c": _stub("dup.c", "_syscall1(int,dup,int,fd)\n"),
        "lib/errno.c": "/*\n *  linux/lib/errno.c\n *\n *  Copyright (C) 1991, 1992  Linus Torvalds\n */\n\n"
                       "int errno;\n",
        "lib/execve.c": _stub("execve.c", "_syscall3(int,execve,const char *,file,char **,argv,char **,envp)\n"),
        "lib/malloc.c": _malloc(),
        "lib/open.c": _stub("open.c", "#include <stdarg.h>\n\nint open(const char * filename, int flag, ...)\n{\n"
                            "\tregister int res;\n\tva_list arg;\n\n\tva_start(arg,flag);\n"
                            "\t__asm__(\"movl %2,%%ebx\\n\\t\"\n\t\t\"int $0x80\"\n\t\t:\"=a\" (res)\n"
                            "\t\t:\"0\" (__NR_open),\"g\" ((long)(filename)),\"c\" (flag),\n"
                            "\t\t\"d\" (va_arg(arg,int)));\n\tif (res>=0)\n\t\treturn res;\n"
                            "\terrno = -res;\n\treturn -1;\n}\n"),
        "lib/setsid.c": _stub("setsid.c", "_syscall0(pid_t,setsid)\n"),
        "lib/string.c": "/*\n *  linux/lib/string.c\n *\n *  Copyright (C) 1991, 1992  Linus Torvalds\n */\n\n"
                        "#ifndef __GNUC__\n#error I want gcc!\n#endif\n\n#include <linux/types.h>\n\n"
                        "#define extern\n#define inline\n#define __LIBRARY__\n#include <linux/string.h>\n",
        "lib/wait.c": _stub("wait.c", "_syscall3(pid_t,waitpid,pid_t,pid,int *,wait_stat,int,options)\n\n"
                            "pid_t wait(int * wait_stat)\n{\n\treturn waitpid(-1,wait_stat,0);\n}\n"),
        "lib/write.c": _stub("write.c", "_syscall3(int,write,int,fd,const char *,buf,off_t,count)\n"),
        "net/inet/tcp.c": TCP_NOTICE,
        "drivers/sound/Readme": "Sound support for Linux: see Readme.linux for the installation notes.\n",
        "drivers/sound/Readme.linux": "Installing the sound driver\n\n1. Configure the card's port and IRQ.\n"
                              "2. Rebuild the kernel and reboot.\n",
    }
    files = {f"{TOP}/{path}": data.encode("utf-8") for path, data in text.items()}
    # a keyboard map with Latin-1 letters, not valid UTF-8 (as linux-1.0's drivers/char/defkeymap.map)
    files[f"{TOP}/drivers/char/defkeymap.map"] = ("# Default kernel keymap\nkeycode  26 = aring Aring\n"
                                                  "keycode  39 = odiaeresis Odiaeresis \xf6 \xd6\n"
                                                  "keycode  40 = adiaeresis Adiaeresis \xe4 \xc4\n").encode("latin-1")
    return dict(sorted(files.items()))


def fingerprint() -> str:
    """The SHA-256 of the tree's paths and bytes: changes exactly when the files do."""
    digest = hashlib.sha256()
    for path, data in tree().items():
        digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        folders = sorted({p.rsplit("/", depth)[0] + "/" for p in files for depth in range(1, p.count("/") + 1)})
        for name in folders:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o775, MTIME
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o664, MTIME
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass(frozen=True)
class Release:
    """A written mirror: its root, the release's archives in it, and the files they hold."""

    mirror: Path
    tarball: Path  # .tar.xz
    gz: Path
    files: dict[str, bytes]


def release_at(root: Path) -> Release:
    """The release `write_mirror` wrote under root."""
    folder = root / f"v{VERSION}"
    return Release(root, folder / f"linux-{VERSION}.tar.xz", folder / f"linux-{VERSION}.tar.gz", tree())


def write_mirror(root: Path) -> Release:
    """Write `root/v1.0/` as kernel.org lays it out: both archives and the sha256sums.txt that lists them."""
    files = tree()
    plain = _tar(files)
    folder = root / f"v{VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    xz = folder / f"linux-{VERSION}.tar.xz"
    gz = folder / f"linux-{VERSION}.tar.gz"
    xz.write_bytes(lzma.compress(plain, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64))
    gz.write_bytes(gzip.compress(plain, mtime=0))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in (xz, gz))
    (folder / "sha256sums.txt").write_text(sums)
    return release_at(root)
