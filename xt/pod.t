#!/usr/bin/env perl
# Author test: every POD in lib/ parses cleanly.
use strict;
use warnings;
use Test::More;
use Test::Pod 1.22;

all_pod_files_ok(all_pod_files('lib'));
