{
  "targets": [
    {
      "target_name": "shmq",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/segment.cc",
        "native/futex.cc",
        "native/membarrier.cc",
        "native/fdwatch.cc",
        "native/doorbell.cc",
        "native/process.cc",
        "native/crc32c.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["-Wall", "-Wextra", "-Werror"],
      "cflags_cc": ["-Wall", "-Wextra", "-Werror", "-std=c++17", "-fexceptions"]
    }
  ]
}
