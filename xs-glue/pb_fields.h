/* Field numbers and enum values of the request messages in proto/,
 * generated from them by tests/pb_fields.rs: do not edit. To regenerate
 * it, run EVETCD_WRITE_HEADER=1 cargo test --release --test pb_fields */
#ifndef EVETCD_PB_FIELDS_H
#define EVETCD_PB_FIELDS_H

/* ---- authpb/auth.proto ---- */

/* Permission */
#define PB_Permission_permType                                       1
#define PB_Permission_key                                            2
#define PB_Permission_range_end                                      3
#define PB_Permission_Type_READ                                      0
#define PB_Permission_Type_WRITE                                     1
#define PB_Permission_Type_READWRITE                                 2

/* ---- etcdserverpb/rpc.proto ---- */
#define PB_etcdserverpb_AlarmType_NONE                               0
#define PB_etcdserverpb_AlarmType_NOSPACE                            1
#define PB_etcdserverpb_AlarmType_CORRUPT                            2

/* AlarmRequest */
#define PB_AlarmRequest_action                                       1
#define PB_AlarmRequest_memberID                                     2
#define PB_AlarmRequest_alarm                                        3
#define PB_AlarmRequest_AlarmAction_GET                              0
#define PB_AlarmRequest_AlarmAction_ACTIVATE                         1
#define PB_AlarmRequest_AlarmAction_DEACTIVATE                       2

/* AuthDisableRequest */

/* AuthEnableRequest */

/* AuthRoleAddRequest */
#define PB_AuthRoleAddRequest_name                                   1

/* AuthRoleDeleteRequest */
#define PB_AuthRoleDeleteRequest_role                                1

/* AuthRoleGetRequest */
#define PB_AuthRoleGetRequest_role                                   1

/* AuthRoleGrantPermissionRequest */
#define PB_AuthRoleGrantPermissionRequest_name                       1
#define PB_AuthRoleGrantPermissionRequest_perm                       2

/* AuthRoleListRequest */

/* AuthRoleRevokePermissionRequest */
#define PB_AuthRoleRevokePermissionRequest_role                      1
#define PB_AuthRoleRevokePermissionRequest_key                       2
#define PB_AuthRoleRevokePermissionRequest_range_end                 3

/* AuthStatusRequest */

/* AuthUserAddRequest */
#define PB_AuthUserAddRequest_name                                   1
#define PB_AuthUserAddRequest_password                               2
#define PB_AuthUserAddRequest_options                                3
#define PB_AuthUserAddRequest_hashedPassword                         4

/* AuthUserChangePasswordRequest */
#define PB_AuthUserChangePasswordRequest_name                        1
#define PB_AuthUserChangePasswordRequest_password                    2
#define PB_AuthUserChangePasswordRequest_hashedPassword              3

/* AuthUserDeleteRequest */
#define PB_AuthUserDeleteRequest_name                                1

/* AuthUserGetRequest */
#define PB_AuthUserGetRequest_name                                   1

/* AuthUserGrantRoleRequest */
#define PB_AuthUserGrantRoleRequest_user                             1
#define PB_AuthUserGrantRoleRequest_role                             2

/* AuthUserListRequest */

/* AuthUserRevokeRoleRequest */
#define PB_AuthUserRevokeRoleRequest_name                            1
#define PB_AuthUserRevokeRoleRequest_role                            2

/* AuthenticateRequest */
#define PB_AuthenticateRequest_name                                  1
#define PB_AuthenticateRequest_password                              2

/* CompactionRequest */
#define PB_CompactionRequest_revision                                1
#define PB_CompactionRequest_physical                                2

/* Compare */
#define PB_Compare_result                                            1
#define PB_Compare_target                                            2
#define PB_Compare_key                                               3
#define PB_Compare_version                                           4
#define PB_Compare_create_revision                                   5
#define PB_Compare_mod_revision                                      6
#define PB_Compare_value                                             7
#define PB_Compare_lease                                             8
#define PB_Compare_range_end                                         64
#define PB_Compare_CompareResult_EQUAL                               0
#define PB_Compare_CompareResult_GREATER                             1
#define PB_Compare_CompareResult_LESS                                2
#define PB_Compare_CompareResult_NOT_EQUAL                           3
#define PB_Compare_CompareTarget_VERSION                             0
#define PB_Compare_CompareTarget_CREATE                              1
#define PB_Compare_CompareTarget_MOD                                 2
#define PB_Compare_CompareTarget_VALUE                               3
#define PB_Compare_CompareTarget_LEASE                               4

/* DefragmentRequest */

/* DeleteRangeRequest */
#define PB_DeleteRangeRequest_key                                    1
#define PB_DeleteRangeRequest_range_end                              2
#define PB_DeleteRangeRequest_prev_kv                                3

/* DowngradeRequest */
#define PB_DowngradeRequest_action                                   1
#define PB_DowngradeRequest_version                                  2
#define PB_DowngradeRequest_DowngradeAction_VALIDATE                 0
#define PB_DowngradeRequest_DowngradeAction_ENABLE                   1
#define PB_DowngradeRequest_DowngradeAction_CANCEL                   2

/* HashKVRequest */
#define PB_HashKVRequest_revision                                    1

/* HashRequest */

/* LeaseCheckpointRequest */
#define PB_LeaseCheckpointRequest_checkpoints                        1

/* LeaseGrantRequest */
#define PB_LeaseGrantRequest_TTL                                     1
#define PB_LeaseGrantRequest_ID                                      2

/* LeaseKeepAliveRequest */
#define PB_LeaseKeepAliveRequest_ID                                  1

/* LeaseLeasesRequest */

/* LeaseRevokeRequest */
#define PB_LeaseRevokeRequest_ID                                     1

/* LeaseTimeToLiveRequest */
#define PB_LeaseTimeToLiveRequest_ID                                 1
#define PB_LeaseTimeToLiveRequest_keys                               2

/* MemberAddRequest */
#define PB_MemberAddRequest_peerURLs                                 1
#define PB_MemberAddRequest_isLearner                                2

/* MemberListRequest */
#define PB_MemberListRequest_linearizable                            1

/* MemberPromoteRequest */
#define PB_MemberPromoteRequest_ID                                   1

/* MemberRemoveRequest */
#define PB_MemberRemoveRequest_ID                                    1

/* MemberUpdateRequest */
#define PB_MemberUpdateRequest_ID                                    1
#define PB_MemberUpdateRequest_peerURLs                              2

/* MoveLeaderRequest */
#define PB_MoveLeaderRequest_targetID                                1

/* PutRequest */
#define PB_PutRequest_key                                            1
#define PB_PutRequest_value                                          2
#define PB_PutRequest_lease                                          3
#define PB_PutRequest_prev_kv                                        4
#define PB_PutRequest_ignore_value                                   5
#define PB_PutRequest_ignore_lease                                   6

/* RangeRequest */
#define PB_RangeRequest_key                                          1
#define PB_RangeRequest_range_end                                    2
#define PB_RangeRequest_limit                                        3
#define PB_RangeRequest_revision                                     4
#define PB_RangeRequest_sort_order                                   5
#define PB_RangeRequest_sort_target                                  6
#define PB_RangeRequest_serializable                                 7
#define PB_RangeRequest_keys_only                                    8
#define PB_RangeRequest_count_only                                   9
#define PB_RangeRequest_min_mod_revision                             10
#define PB_RangeRequest_max_mod_revision                             11
#define PB_RangeRequest_min_create_revision                          12
#define PB_RangeRequest_max_create_revision                          13
#define PB_RangeRequest_SortOrder_NONE                               0
#define PB_RangeRequest_SortOrder_ASCEND                             1
#define PB_RangeRequest_SortOrder_DESCEND                            2
#define PB_RangeRequest_SortTarget_KEY                               0
#define PB_RangeRequest_SortTarget_VERSION                           1
#define PB_RangeRequest_SortTarget_CREATE                            2
#define PB_RangeRequest_SortTarget_MOD                               3
#define PB_RangeRequest_SortTarget_VALUE                             4

/* RequestOp */
#define PB_RequestOp_request_range                                   1
#define PB_RequestOp_request_put                                     2
#define PB_RequestOp_request_delete_range                            3
#define PB_RequestOp_request_txn                                     4

/* SnapshotRequest */

/* StatusRequest */

/* TxnRequest */
#define PB_TxnRequest_compare                                        1
#define PB_TxnRequest_success                                        2
#define PB_TxnRequest_failure                                        3

/* WatchCancelRequest */
#define PB_WatchCancelRequest_watch_id                               1

/* WatchCreateRequest */
#define PB_WatchCreateRequest_key                                    1
#define PB_WatchCreateRequest_range_end                              2
#define PB_WatchCreateRequest_start_revision                         3
#define PB_WatchCreateRequest_progress_notify                        4
#define PB_WatchCreateRequest_filters                                5
#define PB_WatchCreateRequest_prev_kv                                6
#define PB_WatchCreateRequest_watch_id                               7
#define PB_WatchCreateRequest_fragment                               8
#define PB_WatchCreateRequest_FilterType_NOPUT                       0
#define PB_WatchCreateRequest_FilterType_NODELETE                    1

/* WatchProgressRequest */

/* WatchRequest */
#define PB_WatchRequest_create_request                               1
#define PB_WatchRequest_cancel_request                               2
#define PB_WatchRequest_progress_request                             3

/* ---- v3electionpb/v3election.proto ---- */

/* CampaignRequest */
#define PB_CampaignRequest_name                                      1
#define PB_CampaignRequest_lease                                     2
#define PB_CampaignRequest_value                                     3

/* LeaderKey */
#define PB_LeaderKey_name                                            1
#define PB_LeaderKey_key                                             2
#define PB_LeaderKey_rev                                             3
#define PB_LeaderKey_lease                                           4

/* LeaderRequest */
#define PB_LeaderRequest_name                                        1

/* ProclaimRequest */
#define PB_ProclaimRequest_leader                                    1
#define PB_ProclaimRequest_value                                     2

/* ResignRequest */
#define PB_ResignRequest_leader                                      1

/* ---- v3lockpb/v3lock.proto ---- */

/* LockRequest */
#define PB_LockRequest_name                                          1
#define PB_LockRequest_lease                                         2

/* UnlockRequest */
#define PB_UnlockRequest_key                                         1

#endif
