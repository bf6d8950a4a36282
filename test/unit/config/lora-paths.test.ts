import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLoraPaths, splitListString } from '../../../src/config/index.js';

test('the three forms, mixed', () => {
  assert.deepEqual(parseLoraPaths(['./adapters/sql', 'chat=./adapters/chat', '{"lora_name":"code","lora_path":"./c","pinned":true}']), [
    { name: './adapters/sql', path: './adapters/sql', pinned: false },
    { name: 'chat', path: './adapters/chat', pinned: false },
    { name: 'code', path: './c', pinned: true },
  ]);
});

test('NAME=PATH splits at the first =, and tokens are trimmed', () => {
  assert.deepEqual(parseLoraPaths(['  a=b=c  ']), [{ name: 'a', path: 'b=c', pinned: false }]);
});

test('JSON entries: pinned defaults to false; wrong types and unknown keys are rejected', () => {
  assert.deepEqual(parseLoraPaths(['{"lora_name":"a","lora_path":"./a"}']), [{ name: 'a', path: './a', pinned: false }]);
  assert.throws(() => parseLoraPaths(['{"lora_name":"a","lora_path":"./a","pinned":"yes"}']), /"pinned": "yes"; it must be true or false/);
  assert.throws(() => parseLoraPaths(['{"lora_name":"a","lora_path":"./a","rank":8}']), /unknown key\(s\) "rank"/);
  assert.throws(() => parseLoraPaths(['{"lora_name":1,"lora_path":"./a"}']), /needs the keys "lora_name" and "lora_path"/);
  assert.throws(() => parseLoraPaths(['{"lora_name":" ","lora_path":"./a"}']), /has an empty adapter name/);
});

test('duplicate names are rejected even across forms', () => {
  assert.throws(() => parseLoraPaths(['sql=./a', '{"lora_name":"sql","lora_path":"./b"}']), /adapter name 'sql' appears twice/);
});

test('list strings split on whitespace outside JSON objects', () => {
  assert.deepEqual(splitListString(' a=./a   {"lora_name": "b c", "lora_path": "./b"} ./d '), ['a=./a', '{"lora_name": "b c", "lora_path": "./b"}', './d']);
  assert.deepEqual(splitListString('["x", {"lora_name": "y", "lora_path": "./y"}]'), ['x', { lora_name: 'y', lora_path: './y' }]);
});
