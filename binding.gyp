{
  "targets": [
    {
      "target_name": "tslora_cpu",
      "sources": ["<!@(node scripts/build-native.mjs --list-sources)"],
      "include_dirs": ["native/include"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["<!@(node scripts/build-native.mjs --list-defines)", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "<!(node scripts/build-native.mjs --march)", "-fexceptions", "-frtti", "-Wall", "-Wno-unused-function", "-Wno-maybe-uninitialized", "-Wno-uninitialized"],
      "ldflags": ["-pthread"]
    }
  ]
}
