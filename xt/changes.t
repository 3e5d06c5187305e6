#!/usr/bin/env perl
# Author test: Changes is in the CPAN format (CPAN::Changes::Spec): each
# release a version and a date, then its entries.
use strict;
use warnings;
use Test::More;
use Test::CPAN::Changes;

changes_file_ok('Changes');
done_testing;
